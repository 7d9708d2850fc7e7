"""Deployment health in the admin: the state, last error and last check in the deployment list,
and on each deployment's page its live breaker state and the last checks' latencies."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin
from unfold.views import ChangeList

from infra.admin_paging import EstimatedCountPaginator

from . import health
from .health_checks import health_check
from .health_models import DeploymentHealth, HealthCheck
from .services import deployment_enabled_set

HISTORY_SHOWN = 20


@admin.action(description="Enable selected deployments", permissions=["change"])
def enable_deployments(modeladmin, request, queryset) -> None:
    for deployment in queryset:
        deployment_enabled_set(deployment=deployment, enabled=True, actor=request.user)
    messages.success(request, "Enabled; routing takes them within the routing table's TTL.")


@admin.action(description="Disable selected deployments", permissions=["change"])
def disable_deployments(modeladmin, request, queryset) -> None:
    for deployment in queryset:
        deployment_enabled_set(deployment=deployment, enabled=False, actor=request.user)
    messages.success(request, "Disabled; routing drops them within the routing table's TTL.")


@admin.action(description="Run a health check now", permissions=["change"])
def check_health_now(modeladmin, request, queryset) -> None:
    """The beat task's probe, on the selected deployments only, now: the shared breaker state
    and the health rows are updated as by a scheduled run."""
    wanted = set(queryset.values_list("pk", flat=True))
    results = health_check(deployment_ids=wanted)
    for probed in results:
        if probed.ok:
            messages.success(request, f"{probed.route.label}: ok in {probed.latency_ms:.0f} ms")
        else:
            messages.error(request, f"{probed.route.label}: {probed.error}")
    skipped = len(wanted) - len(results)
    if skipped:
        messages.warning(
            request, f"{skipped} not checked: disabled, or left out of routing (see its provider)."
        )


class DeploymentHealthMixin:
    """Mixed into DeploymentAdmin (routing/admin.py)."""

    health_fields = ("health_now", "health_last_check", "health_history")
    actions = [enable_deployments, disable_deployments, check_health_now]

    def get_changelist(self, request, **kwargs):
        return _LiveHealthChangeList

    @admin.display(description="Health")
    def health_state(self, obj) -> str:
        """The shared breaker's state now (read for the whole page at once), with the last
        check's error when it is not closed; the last check's state if the store is down."""
        found = _row(obj)
        live = getattr(obj, "live_health", None)
        if live is None and (found is None or found.last_check_at is None):
            return "not checked"
        state = live.state if live is not None else found.state
        error = found.last_error if found is not None else ""
        if state == health.CLOSED or not error:
            return state
        return f"{state}: {error[:60]}"

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


class _LiveHealthChangeList(ChangeList):
    def get_results(self, request) -> None:
        super().get_results(request)
        states = health.current_many_sync(obj.pk for obj in self.result_list) or {}
        for obj in self.result_list:
            obj.live_health = states.get(obj.pk)


def _row(obj) -> DeploymentHealth | None:
    try:
        return obj.health
    except DeploymentHealth.DoesNotExist:
        return None


@admin.register(DeploymentHealth)
class DeploymentHealthAdmin(ModelAdmin):
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
    search_fields = ["deployment__model_name", "deployment__upstream_model", "last_error"]
    list_select_related = ["deployment__provider"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(HealthCheck)
class HealthCheckAdmin(ModelAdmin):
    """Every probe's result (bounded by the task's purge, but still never counted in full)."""

    list_display = ["at", "deployment", "ok", "latency", "error"]
    list_filter = ["ok", "deployment__provider"]
    search_fields = ["deployment__model_name", "deployment__upstream_model", "error"]
    list_select_related = ["deployment__provider"]
    raw_id_fields = ["deployment"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: HealthCheck) -> str:
        return f"{obj.latency_ms:,.0f} ms"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
