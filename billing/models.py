"""The request log (one row per authenticated request, never any prompt or response text), and
what budgets keep beside it: the spend ledger built from it and the alerts sent."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

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
    # The agreements that allowed the call under the team's compliance requirements, e.g.
    # "dpa:12 openai-eu (hipaa, gdpr)" (compliance/snapshot.py); empty when none applied.
    compliance_basis = models.CharField(max_length=200, blank=True)
    # Cost allocation tags (x-gateway-tags / metadata): {"use_case": "search", ...}.
    tags = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    # USD. Prices have 6 decimals per 1M tokens, so 12 decimals keep every cost exact.
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal(0))
    # PII placeholders put into the prompt before it went upstream (policy `scrub_prompts`).
    redactions = models.PositiveIntegerField(default=0)
    # When the row was stored (ingestion may lag created_at); what the rollup task's
    # incremental pass looks at (billing/rollups.py).
    ingested_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "created_at"], name="usage_team_time"),
            models.Index(fields=["api_key", "created_at"], name="usage_key_time"),
        ]

    def __str__(self) -> str:
        return self.request_id


class UsageContent(models.Model):
    """What a team's privacy mode keeps of one request's content, apart from its usage row.

    `metadata` (the default) stores no row here at all. `hashed` stores keyed hashes only,
    `redacted` PII-scrubbed text, `full` the text as sent (an opt-in). Its own, shorter
    retention (GATEWAY_CONTENT_RETENTION_DAYS) purges it long before the usage row.
    """

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
    )
    mode = models.CharField(max_length=8)  # hashed | redacted | full
    # HMAC-SHA-256 (hex) of the canonical prompt and of the response text, and which key
    # made them (a short fingerprint, never the key), so a key rotation is visible.
    prompt_hmac = models.CharField(max_length=64, blank=True)
    response_hmac = models.CharField(max_length=64, blank=True)
    hmac_key_id = models.CharField(max_length=16, blank=True)
    prompt = models.TextField(blank=True)
    response = models.TextField(blank=True)
    # Placeholders put into the stored text by label: {"EMAIL": 2, "PHONE": 1}.
    redactions = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "usage content"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.request_id


# Fixed latency histogram bucket upper bounds (ms) of DailyUsage.latency_hist: merging rows
# (a team's day across models) sums the counts, and percentiles come from the merged counts.
# The last bucket is open-ended.
LATENCY_BUCKETS_MS = (
    1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000, 300000,
)  # fmt: skip


class DailyUsage(models.Model):
    """One day of one (team, project, key, model, provider, use case): the dashboards' source.

    Rebuilt from usage rows by billing/rollups.py, never incremented, so a replay of the task
    changes nothing. `day` is the UTC date of the request's arrival.
    """

    day = models.DateField()
    organization_id = models.BigIntegerField(null=True)
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="+",
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
        related_name="+",
    )
    key_prefix = models.CharField(max_length=16, blank=True)
    model = models.CharField(max_length=200, blank=True)  # the requested model
    provider_name = models.CharField(max_length=100, blank=True)
    use_case = models.CharField(max_length=64, blank=True)  # tags["use_case"]
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)  # status >= 400
    errors_by_type = models.JSONField(default=dict, blank=True)  # {"rate_limit_exceeded": 3}
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal(0))
    latency_p50_ms = models.FloatField(default=0)
    latency_p95_ms = models.FloatField(default=0)
    latency_p99_ms = models.FloatField(default=0)
    # Counts per LATENCY_BUCKETS_MS bucket (+1 open-ended), for percentiles across rows.
    latency_hist = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "daily usage"
        ordering = ["-day", "team_slug", "model"]
        indexes = [
            models.Index(fields=["team", "day"], name="daily_team_day"),
            models.Index(fields=["day"], name="daily_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.team_slug} {self.model}"


class RollupState(models.Model):
    """Named watermarks of background passes (the rollup's last ingested_at seen)."""

    name = models.CharField(max_length=50, unique=True)
    watermark = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.watermark}"


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
