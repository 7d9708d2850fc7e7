"""The request log. One row per authenticated request, never any prompt or response text."""

from decimal import Decimal

from django.conf import settings
from django.db import models


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
    latency_ms = models.FloatField(default=0)  # total, as the gateway saw it
    upstream_ms = models.FloatField(default=0)  # until upstream response headers (or body)
    ttft_ms = models.FloatField(null=True, blank=True)  # first streamed content chunk
    attempts = models.PositiveSmallIntegerField(default=0)  # upstream calls made (fallbacks + 1)
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
