"""The request log (one row per authenticated request, never any prompt or response text), and
what budgets keep beside it: the spend ledger built from it and the alerts sent."""

from decimal import Decimal

from django.conf import settings
from django.db import models

from policies.models import Policy


class UsageRecord(models.Model):
    request_id = models.CharField(max_length=64, unique=True)  # idempotency key for ingestion
    created_at = models.DateTimeField(db_index=True)  # when the request arrived
    # Foreign keys without database constraints: a log row must survive (and be insertable
    # after) the deletion of its team, key or deployment. Names are copied for the same reason.
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="usage_records",
    )
    team_slug = models.CharField(max_length=50, blank=True)
    project = models.ForeignKey(
        "tenants.Project",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    api_key = models.ForeignKey(
        "tenants.ApiKey",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="usage_records",
    )
    key_prefix = models.CharField(max_length=16, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    endpoint = models.CharField(max_length=32)  # chat.completions | embeddings
    requested_model = models.CharField(max_length=200, blank=True)
    deployment = models.ForeignKey(
        "routing.Deployment",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    provider = models.ForeignKey(
        "routing.Provider",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    provider_name = models.CharField(max_length=100, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=50, blank=True)
    stream = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    # What admission reserved against TPM limits; actual above it was an under-estimate.
    reserved_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)  # total, as the gateway saw it
    upstream_ms = models.FloatField(default=0)  # until upstream response headers (or body)
    ttft_ms = models.FloatField(null=True, blank=True)  # first streamed content chunk
    attempts = models.PositiveSmallIntegerField(default=0)  # upstream calls made (fallbacks + 1)
    # Attempts that failed, in order: "provider/model: error kind; ..."
    fallbacks = models.CharField(max_length=500, blank=True)
    # Cost allocation tags (x-gateway-tags / metadata): {"use_case": "search", ...}.
    tags = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    # USD. Prices have 6 decimals per 1M tokens, so 12 decimals keep every cost exact.
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal(0))

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "created_at"], name="usage_team_time"),
            models.Index(fields=["api_key", "created_at"], name="usage_key_time"),
        ]

    def __str__(self) -> str:
        return self.request_id


# --- Budgets (billing/budgets.py, billing/alerts.py) ------------------------------------------
# `level` is a BudgetScope's level (policies/types.py): organization, team, project or key, and
# `scope_id` the primary key of that organization, team, project or API key. No foreign keys, as
# for usage rows: the ledger and the alerts sent are a record that outlives what they were about.
BUDGET_LEVELS = [(level, level) for level in ("organization", "team", "project", "key")]


class SpendLedger(models.Model):
    """The spend of one budgeted scope in one period, summed from usage records (the truth).

    Rebuilt by the budget check (billing/budgets.py), never incremented: a row is always the
    sum of the usage stored when it was refreshed, so a missed or repeated run cannot skew it.
    """

    level = models.CharField(max_length=12, choices=BUDGET_LEVELS)
    scope_id = models.BigIntegerField()
    period = models.CharField(max_length=7)  # "2026-11", in the organization's timezone
    spent_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "spend ledger entry"
        verbose_name_plural = "spend ledger"
        ordering = ["-period", "level", "scope_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["level", "scope_id", "period"], name="uniq_spend_ledger_scope_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.scope_id} {self.period}: ${self.spent_usd:.2f}"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    NONE = "none", "Nowhere to send"
    SUPERSEDED = "superseded", "Superseded by a higher threshold"


class BudgetAlert(models.Model):
    """One crossed threshold of one budget in one period.

    The unique constraint is what makes an alert fire once: every worker may see the crossing,
    only the one whose insert wins sends it.
    """

    level = models.CharField(max_length=12, choices=BUDGET_LEVELS)
    scope_id = models.BigIntegerField()
    label = models.CharField(max_length=250)  # "team 'search'", as it was when it fired
    period = models.CharField(max_length=7)
    threshold = models.DecimalField(max_digits=7, decimal_places=2)  # percent of the budget
    spent_usd = models.DecimalField(max_digits=24, decimal_places=12)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=6)
    created_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list, blank=True)  # email addresses
    email_status = models.CharField(
        max_length=10, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    webhook_status = models.CharField(
        max_length=10, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)  # webhook calls made
    # One entry per webhook call: {"at": ISO time, "result": "HTTP 503" | "ConnectError" | "ok"}.
    # Never the URL: it is a secret.
    attempt_log = models.JSONField(default=list, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["level", "scope_id", "period", "threshold"],
                name="uniq_budget_alert_threshold",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.period} {self.threshold.normalize():f}%"


class BudgetOverview(Policy):
    """A policy with a budget, as the admin's budget overview shows it (billing/admin.py)."""

    class Meta:
        proxy = True
        verbose_name = "budget"
        verbose_name_plural = "budget overview"
