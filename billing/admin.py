from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils.html import format_html

from .alerts import percent
from .budget_overview import BudgetRow, budget_rows
from .budgets import BUDGET_RELATED
from .models import BudgetAlert, BudgetOverview, SpendLedger, UsageRecord


class _ReadOnly(admin.ModelAdmin):
    """Records of what happened: nobody edits them in the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(_ReadOnly):
    """Read-only: the request log is evidence; nobody edits it by hand."""

    list_display = [
        "created_at",
        "request_id",
        "team_slug",
        "key_prefix",
        "requested_model",
        "provider_name",
        "status_code",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "stream",
    ]
    list_filter = [
        "status_code",
        "stream",
        "endpoint",
        "provider_name",
        "team_slug",
        "usage_estimated",
    ]
    search_fields = ["request_id", "team_slug", "key_prefix", "requested_model"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # COUNT(*) on a big log table is slow


@admin.register(SpendLedger)
class SpendLedgerAdmin(_ReadOnly):
    """Read-only: rebuilt from usage records by the budget check; an edit would be overwritten."""

    list_display = ["period", "level", "scope_id", "spent_usd", "updated_at"]
    list_filter = ["level", "period"]
    search_fields = ["period"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(_ReadOnly):
    """Read-only: the record of what was sent."""

    list_display = [
        "created_at",
        "label",
        "period",
        "threshold",
        "spent_usd",
        "limit_usd",
        "email_status",
        "webhook_status",
        "attempts",
        "last_error",
    ]
    list_filter = ["email_status", "webhook_status", "level", "period"]
    search_fields = ["label", "period"]
    date_hierarchy = "created_at"


def _usd(amount: Decimal | None) -> str:
    return "—" if amount is None else f"${amount:,.2f}"


def _micros(amount: int | None) -> str:
    return "—" if amount is None else _usd(Decimal(amount) / 1_000_000)


class _OverviewChangeList(ChangeList):
    def get_results(self, request) -> None:
        super().get_results(request)
        # One batch for the page: the ledger and alerts in two queries, Redis once per budget.
        rows = budget_rows(list(self.result_list))
        for policy in self.result_list:
            policy.budget_row = rows.get(policy.pk)


@admin.register(BudgetOverview)
class BudgetOverviewAdmin(_ReadOnly):
    """Every budget with its spend this period: the ledger (usage stored in Postgres, as of the
    last budget check), the live Redis counter (settled requests, ingested or not), what
    requests in flight hold reserved now, and the alert thresholds already sent."""

    list_display = [
        "budget",
        "budget_mode",
        "limit",
        "period",
        "spent",
        "spent_live",
        "reserved_now",
        "alerts_sent",
    ]
    list_filter = ["budget_mode"]
    list_per_page = 50
    fields = list_display
    readonly_fields = list_display

    def get_queryset(self, request):
        return (
            super().get_queryset(request).filter(monthly_budget_usd__isnull=False)
        ).select_related(*BUDGET_RELATED)

    def get_changelist(self, request, **kwargs):
        return _OverviewChangeList

    def _row(self, obj) -> BudgetRow | None:
        if not hasattr(obj, "budget_row"):  # the change page: one policy
            obj.budget_row = budget_rows([obj]).get(obj.pk)
        return obj.budget_row

    @admin.display(description="budget")
    def budget(self, obj) -> str:
        row = self._row(obj)
        return row.target.label if row else str(obj)

    @admin.display(description="limit")
    def limit(self, obj) -> str:
        return _usd(obj.monthly_budget_usd)

    @admin.display(description="period")
    def period(self, obj) -> str:
        row = self._row(obj)
        return f"{row.period} ({row.target.timezone})" if row else "—"

    @admin.display(description="spent (ledger)")
    def spent(self, obj) -> str:
        row = self._row(obj)
        return _usd(row.ledger_usd) if row else "—"

    @admin.display(description="spent (live counter)")
    def spent_live(self, obj) -> str:
        row = self._row(obj)
        if row is None or row.counters is None:
            return "Redis unavailable"
        if row.counters.spent_micros is None:
            return "not loaded (rebuilt on the next request)"
        return _micros(row.counters.spent_micros)

    @admin.display(description="reserved now")
    def reserved_now(self, obj) -> str:
        row = self._row(obj)
        if row is None or row.counters is None:
            return "Redis unavailable"
        return _micros(row.counters.reserved_micros)

    @admin.display(description="alerts sent")
    def alerts_sent(self, obj) -> str:
        row = self._row(obj)
        if row is None:
            return "—"
        shown = ", ".join(f"{percent(t)}%" for t in row.alerts_sent) or "none"
        url = reverse("admin:billing_budgetalert_changelist")
        query = urlencode(
            {"level": row.target.level, "scope_id": row.target.scope_id, "period": row.period}
        )
        return format_html('<a href="{}?{}">{}</a>', url, query, shown)
