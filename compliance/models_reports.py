"""What the registry sends and shows about itself: review and expiry reminders, and the
compliance report's place in the admin.

ComplianceReminder  one row per reminder (an agreement, a kind of date, that date, how many days
                    before it), inserted once: the unique constraint is what makes a reminder go
                    out once, however often (and on however many workers) the daily check runs.
ComplianceReport    no table: a proxy of the agreements that gives the report its entry on the
                    admin index (compliance/views.py).

Imported at the end of compliance/models.py, so that Django finds these models with the app's.
"""

from django.db import models

from billing.models import AlertStatus

from .models import DataProcessingAgreement


class ReminderKind(models.TextChoices):
    EXPIRY = "expiry", "Agreement expiry"
    BAA_EXPIRY = "baa_expiry", "BAA expiry"
    REVIEW = "review", "Review due"


class ComplianceReminder(models.Model):
    """One reminder of one date of one agreement. `days_before` 0 is the notice on the day
    itself: the agreement (or BAA) has lapsed, or its review is due."""

    # Kept when the agreement goes: the record of what was sent outlives it.
    agreement = models.ForeignKey(
        DataProcessingAgreement,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reminders",
    )
    party = models.CharField(max_length=320)  # "openai-eu", as it was when it was sent
    kind = models.CharField(max_length=12, choices=ReminderKind.choices)
    due_on = models.DateField()
    days_before = models.PositiveSmallIntegerField()
    # Days from the check that recorded it to the date (negative: already past), which is what
    # the message says: a first check 5 days ahead sends the 7-day reminder as "in 5 days".
    days_left = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list, blank=True)  # email addresses
    email_status = models.CharField(
        max_length=10, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    webhook_status = models.CharField(
        max_length=10, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)  # webhook calls made
    # One entry per webhook call: {"at": ISO time, "result": "HTTP 503"}. Never the URL.
    attempt_log = models.JSONField(default=list, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "compliance reminder"
        constraints = [
            models.UniqueConstraint(
                fields=["agreement", "kind", "due_on", "days_before"],
                name="compliance_reminder_once",
            )
        ]

    def __str__(self) -> str:
        when = "on the day" if self.days_before == 0 else f"{self.days_before} days before"
        return f"{self.party}: {self.get_kind_display().lower()} {self.due_on} ({when})"


class ComplianceReport(DataProcessingAgreement):
    class Meta:
        proxy = True
        # Who may read the report is who may view agreements; the proxy has no rights of its own.
        default_permissions = ()
        verbose_name = verbose_name_plural = "compliance report"
