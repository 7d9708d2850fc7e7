"""The admin index's dashboard: what a platform admin looks at first (UNFOLD's
DASHBOARD_CALLBACK). Today's spend, requests and errors; deployments whose breaker is not
closed; budgets near their limit. Each block is shown to those who may view its source."""

from django.urls import reverse

from billing.dashboard import budgets_near_limit, today_usage
from infra.money import format_usd
from routing import health
from routing.models import Deployment

SHOWN = 10  # rows per block; the link goes to the full list


def unhealthy_deployments() -> tuple[list[dict], bool]:
    """Enabled deployments whose shared breaker is not closed (one Redis round trip for all),
    and whether the state store answered."""
    deployments = list(
        Deployment.objects.filter(enabled=True, provider__enabled=True).select_related(
            "provider", "health"
        )
    )
    states = health.current_many_sync(d.pk for d in deployments)
    if states is None:
        return [], False
    rows = []
    for deployment in deployments:
        now = states.get(deployment.pk)
        if now is None or now.state == health.CLOSED:
            continue
        row = getattr(deployment, "health", None)
        rows.append(
            {
                "label": f"{deployment.model_name} @ {deployment.provider.name}",
                "state": now.state,
                "failures": now.consecutive_failures,
                "last_error": row.last_error if row is not None else "",
                "url": reverse("admin:routing_deployment_change", args=[deployment.pk]),
            }
        )
    return rows, True


def dashboard(user) -> dict:
    found: dict = {}
    if user.has_perm("billing.view_usagerecord"):
        today = today_usage()
        rate = today.errors / today.requests * 100 if today.requests else 0.0
        found["today"] = {
            "day": today.day,
            "cost": format_usd(today.cost_usd),
            "requests": today.requests,
            "errors": today.errors,
            "error_rate": f"{rate:.1f}%",
            "rolled_up_at": today.rolled_up_at,
            "log_url": reverse("admin:billing_usagerecord_changelist"),
        }
    if user.has_perm("routing.view_deployment"):
        rows, answered = unhealthy_deployments()
        found["unhealthy"] = {"rows": rows[:SHOWN], "count": len(rows), "answered": answered}
    if user.has_perm("billing.view_budgetoverview"):
        budgets = budgets_near_limit()
        found["budgets"] = {
            "rows": [
                {
                    "label": b.target.label,
                    "period": b.period,
                    "spent": format_usd(b.spent_usd),
                    "limit": format_usd(b.target.limit_usd),
                    "percent": f"{b.percent:.0f}%",
                    "over": b.percent >= 100,
                }
                for b in budgets[:SHOWN]
            ],
            "count": len(budgets),
            "url": reverse("admin:billing_budgetoverview_changelist"),
        }
    return found


def dashboard_callback(request, context: dict) -> dict:
    context["dashboard"] = dashboard(request.user)
    return context
