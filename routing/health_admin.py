"""Deployment health in the admin: the state, last error and last check in the deployment list,
and on each deployment's page its live breaker state and the last checks' latencies."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import health
from .health_models import DeploymentHealth, HealthCheck

HISTORY_SHOWN = 20


class DeploymentHealthMixin:
    """Mixed into DeploymentAdmin (routing/admin.py)."""

    health_fields = ("health_now", "health_last_check", "health_history")

    @admin.display(description="Health")
    def health_state(self, obj) -> str:
        found = _row(obj)
        if found is None or found.last_check_at is None:
            return "not checked"
        return (
            found.state
            if not found.last_error or found.state == "closed"
            else (f"{found.state}: {found.last_error[:60]}")
        )

    @admin.display(description="Live state (shared breaker)")
    def health_now(self, obj) -> str:
        if obj.pk is None:
            return "-"
        now = health.current_sync(obj.pk)
        if now is None:
            return "unknown (the state store is unreachable)"
        latency = "no latency yet" if now.latency_ms is None else f"{now.latency_ms:.0f} ms EWMA"
        extra = f", usable again in {now.retry_in_s:.0f} s" if not now.usable else ""
        return f"{now.state}{extra}; {latency}; {now.consecutive_failures} failures in a row"

    @admin.display(description="Last health check")
    def health_last_check(self, obj) -> str:
        found = _row(obj)
        if found is None or found.last_check_at is None:
            return "never"
        ok = found.last_ok_at.isoformat(" ", "seconds") if found.last_ok_at else "never"
        return format_html(
            "{} at {}; last success {}; last error: {}",
            found.state,
            found.last_check_at.isoformat(" ", "seconds"),
            ok,
            found.last_error or "none",
        )

    @admin.display(description=f"Last {HISTORY_SHOWN} checks")
    def health_history(self, obj) -> str:
        if obj.pk is None:
            return "-"
        checks = HealthCheck.objects.filter(deployment_id=obj.pk).order_by("-at", "-id")[
            :HISTORY_SHOWN
        ]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
            (
                (
                    c.at.isoformat(" ", "seconds"),
                    "ok" if c.ok else "failed",
                    f"{c.latency_ms:.0f}",  # formatted first: format_html escapes to text
                    c.error,
                )
                for c in checks
            ),
        )
        if not rows:
            return "no checks yet"
        return format_html(
            "<table><tr><th>At</th><th>Result</th><th>Latency</th><th>Error</th></tr>{}</table>",
            rows,
        )


def _row(obj) -> DeploymentHealth | None:
    try:
        return obj.health
    except DeploymentHealth.DoesNotExist:
        return None


@admin.register(DeploymentHealth)
class DeploymentHealthAdmin(admin.ModelAdmin):
    """Every deployment's latest check at a glance (written by the health task only)."""

    list_display = [
        "deployment",
        "state",
        "last_check_at",
        "last_ok_at",
        "consecutive_failures",
        "latency_ms",
        "last_error",
    ]
    list_filter = ["state"]
    list_select_related = ["deployment__provider"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
