"""What the active health checks found, kept in Postgres for the admin (routing/health.py holds
the live state in Redis; these rows are its history and last word, never read by the hot path).
"""

from django.db import models


class DeploymentHealth(models.Model):
    """Each deployment's latest check: one row, updated by every run of the health task."""

    deployment = models.OneToOneField(
        "routing.Deployment", on_delete=models.CASCADE, related_name="health"
    )
    # The breaker's state after the check: closed | open | half_open | cooling.
    state = models.CharField(max_length=16, default="closed")
    # The last failure, short and redacted (never a credential an upstream echoed).
    last_error = models.CharField(max_length=300, blank=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The shared latency EWMA (live traffic and checks) when the check ran, in ms.
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "deployment health"
        verbose_name_plural = "deployment health"

    def __str__(self) -> str:
        return f"{self.deployment}: {self.state}"


class HealthCheck(models.Model):
    """One probe's result: the latency history the admin shows (bounded: see the task)."""

    deployment = models.ForeignKey(
        "routing.Deployment", on_delete=models.CASCADE, related_name="health_checks"
    )
    at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    latency_ms = models.FloatField()
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-at",)
        indexes = [models.Index(fields=["deployment", "-at"], name="routing_hc_deployment_at")]

    def __str__(self) -> str:
        return f"{self.deployment} at {self.at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else 'failed'}"
