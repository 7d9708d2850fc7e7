from datetime import UTC
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeDateTimeFilter
from unfold.views import ChangeList

from infra.admin_paging import EstimatedCountPaginator
from infra.money import format_usd

from .alerts import percent
from .budget_overview import BudgetRow, budget_rows
from .budgets import BUDGET_RELATED
from .models import BudgetAlert, BudgetOverview, DailyUsage, SpendLedger, UsageRecord


class _ReadOnly(ModelAdmin):
    """Records of what happened: nobody edits them in the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OutcomeFilter(admin.SimpleListFilter):
    """By status class: a range on the column, never a DISTINCT over the whole log."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("ok", "success (< 400)"), ("4xx", "refused (4xx)"), ("5xx", "failed (5xx)")]

    def queryset(self, request, queryset):
        match self.value():
            case "ok":
                return queryset.filter(status_code__lt=400)
            case "4xx":
                return queryset.filter(status_code__gte=400, status_code__lt=500)
            case "5xx":
                return queryset.filter(status_code__gte=500)
        return queryset


class _BigTable(_ReadOnly):
    """Tables that grow without bound: pages drawn from an estimate, never a COUNT(*) (see
    infra/admin_paging.py), and filters on related tables or fixed lists, never a DISTINCT."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(UsageRecord)
class UsageRecordAdmin(_BigTable):
    """Read-only: the request log is evidence; nobody edits it by hand."""

    # What fits a 1366 px screen; the rest is on each row's page.
    list_display = [
        "when",
        "team_shown",
        "key_shown",
        "model_shown",
        "status",
        "cost",
        "latency",
        "tokens",
    ]
    list_filter = [
        ("created_at", RangeDateTimeFilter),
        OutcomeFilter,
        "stream",
        "usage_estimated",
        "team",
        "provider",
    ]
    list_filter_submit = True  # the date range is typed, then applied
    search_fields = ["=request_id", "=team_slug", "=key_prefix", "requested_model"]
    raw_id_fields = ["organization", "team", "project", "api_key", "user", "deployment", "provider"]

    # Short cells, so that nine columns fit a 1366 px screen without wrapping.
    @admin.display(description="when (UTC)", ordering="created_at")
    def when(self, obj: UsageRecord) -> str:
        return obj.created_at.astimezone(UTC).strftime("%m-%d %H:%M:%S")

    @admin.display(description="team", ordering="team_slug")
    def team_shown(self, obj: UsageRecord) -> str:
        return obj.team_slug or "—"

    @admin.display(description="key", ordering="key_prefix")
    def key_shown(self, obj: UsageRecord) -> str:
        return obj.key_prefix or "—"

    @admin.display(description="model", ordering="requested_model")
    def model_shown(self, obj: UsageRecord) -> str:
        return obj.requested_model

    @admin.display(description="status", ordering="status_code")
    def status(self, obj: UsageRecord) -> int:
        return obj.status_code

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj: UsageRecord) -> str:
        return format_usd(obj.cost_usd)

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: UsageRecord) -> str:
        return f"{obj.latency_ms:,.0f}\u00a0ms"  # no break between the number and its unit

    @admin.display(description="tokens in/out")
    def tokens(self, obj: UsageRecord) -> str:
        return f"{obj.input_tokens:,} / {obj.output_tokens:,}"


@admin.register(DailyUsage)
class DailyUsageAdmin(_BigTable):
    """Read-only: rebuilt from usage records by the rollup task (billing/rollups.py)."""

    list_display = [
        "day",
        "team_slug",
        "key_prefix",
        "model",
        "requests",
        "errors",
        "cost",
        "latency_p95",
    ]
    list_filter = [("day", admin.DateFieldListFilter), "team"]
    search_fields = ["=team_slug", "=key_prefix", "model", "provider_name", "use_case"]
    raw_id_fields = ["team", "project", "api_key"]

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj: DailyUsage) -> str:
        return format_usd(obj.cost_usd)

    @admin.display(description="p95 latency", ordering="latency_p95_ms")
    def latency_p95(self, obj: DailyUsage) -> str:
        return f"{obj.latency_p95_ms:,.0f} ms"


@admin.register(SpendLedger)
class SpendLedgerAdmin(_ReadOnly):
    """Read-only: rebuilt from usage records by the budget check; an edit would be overwritten."""

    list_display = ["period", "level", "scope_id", "spent", "updated_at"]
    list_filter = ["level", "period"]
    search_fields = ["period"]

    @admin.display(description="spent", ordering="spent_usd")
    def spent(self, obj: SpendLedger) -> str:
        return format_usd(obj.spent_usd)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(_ReadOnly):
    """Read-only: the record of what was sent."""

    list_display = [
        "created_at",
        "label",
        "period",
        "threshold",
        "spent",
        "limit",
        "email_status",
        "webhook_status",
        "attempts",
        "last_error",
    ]
    list_filter = ["email_status", "webhook_status", "level", "period"]
    search_fields = ["label", "period"]
    date_hierarchy = "created_at"

    @admin.display(description="spent", ordering="spent_usd")
    def spent(self, obj: BudgetAlert) -> str:
        return format_usd(obj.spent_usd)

    @admin.display(description="limit", ordering="limit_usd")
    def limit(self, obj: BudgetAlert) -> str:
        return format_usd(obj.limit_usd)


def _usd(amount: Decimal | None) -> str:
    return format_usd(amount)


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
    search_fields = ["organization__slug", "team__slug", "project__slug", "api_key__name"]
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


# The spend column on the teams' and keys' pages (its own module, to keep this one short).
from . import admin_spend  # noqa: E402, F401
