"""The compliance registry: data processing agreements per provider, and what teams require.

DataProcessingAgreement  one per provider (sub_processor "") and, where it matters, one per
                         sub-processor of that provider; its status, dates, document, the
                         terms routing reads (BAA, SCCs, zero retention, training opt-out,
                         regions) and its review cycle.
RequirementSet           the requirements (compliance/requirements.py) an organization or a
                         team declares; a team's effective set is its own plus its organization's.

Every change of either keeps a history row (django-simple-history: the Historical* models, with
who changed what and when), whether made in the admin, by loadconfig or by code that calls
save(). QuerySet.update() and bulk writes bypass it, so nothing here uses them.

Dates are calendar days in settings.TIME_ZONE: an agreement that `expires_on` a day no longer
counts from the start of that day (compliance/snapshot.py turns this into a timestamp).
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing.models import AlertStatus
from routing.regions import vocabulary_problem

from .requirements import validate_requirements


def validate_regions(value) -> None:
    """A list of routing/regions.py vocabulary names (eu, eu-west, us, on-prem, ...)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("a list of region names")
    for name in value:
        if problem := vocabulary_problem(name):
            raise ValidationError(problem)


def validate_names(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError("a list of names")


def _valid_on(today: datetime.date, expires_on: datetime.date | None) -> bool:
    return expires_on is None or today < expires_on


class DataProcessingAgreement(models.Model):
    class Status(models.TextChoices):
        NONE = "none", "None"
        IN_REVIEW = "in_review", "In review"
        SIGNED = "signed", "Signed"
        EXPIRED = "expired", "Expired"
        TERMINATED = "terminated", "Terminated"

    # Deleting a provider deletes its agreements; their history rows stay.
    provider = models.ForeignKey(
        "routing.Provider", on_delete=models.CASCADE, related_name="agreements"
    )
    sub_processor = models.CharField(
        max_length=200,
        blank=True,
        help_text="Empty: the agreement with the provider itself. A name: the agreement "
        "covering that sub-processor of the provider; routing then requires it too.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NONE)
    signed_on = models.DateField(null=True, blank=True)
    expires_on = models.DateField(
        null=True, blank=True, help_text="Counts until the start of this day; empty: no expiry."
    )
    document = models.FileField(upload_to="compliance/agreements/%Y/", blank=True)
    document_url = models.URLField(max_length=500, blank=True, help_text="Or a link to it.")
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long the provider keeps prompts and outputs."
    )
    zero_data_retention = models.BooleanField(default=False)
    training_opt_out = models.BooleanField(
        default=False, help_text="The provider may not train on the data sent to it."
    )
    baa = models.BooleanField("HIPAA BAA signed", default=False)
    baa_signed_on = models.DateField("BAA signed on", null=True, blank=True)
    baa_expires_on = models.DateField("BAA expires on", null=True, blank=True)
    scc = models.BooleanField("GDPR SCCs", default=False, help_text="Standard Contractual Clauses")
    regions = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_regions],
        help_text="Regions the agreement covers (eu, eu-west, us, uk, on-prem, ...); "
        "empty: wherever the provider processes.",
    )
    sub_processors = models.JSONField(
        default=list, blank=True, validators=[validate_names], help_text="Names, as listed."
    )
    owner = models.EmailField(
        blank=True, help_text="Who answers for this agreement; review reminders go here."
    )
    last_reviewed_on = models.DateField(null=True, blank=True)
    next_review_on = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["provider__name", "sub_processor"]
        verbose_name = "data processing agreement"
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "sub_processor"], name="compliance_dpa_one_per_party"
            )
        ]

    def __str__(self) -> str:
        return f"{self.party}: {self.get_status_display().lower()}"

    @property
    def party(self) -> str:
        """Who the agreement is with: the provider, or 'provider / sub-processor'."""
        name = self.provider.name if self.provider_id else "?"
        return f"{name} / {self.sub_processor}" if self.sub_processor else name

    def clean(self) -> None:
        errors = {}
        if self.status == self.Status.SIGNED and self.signed_on is None:
            errors["signed_on"] = "a signed agreement needs its signing date"
        if self.signed_on and self.expires_on and self.expires_on <= self.signed_on:
            errors["expires_on"] = "must be after signed_on"
        if self.baa_signed_on and self.baa_expires_on and self.baa_expires_on <= self.baa_signed_on:
            errors["baa_expires_on"] = "must be after baa_signed_on"
        if not self.baa and (self.baa_signed_on or self.baa_expires_on):
            errors["baa"] = "BAA dates are set but no BAA is recorded"
        if errors:
            raise ValidationError(errors)

    # What routing relies on (compliance/snapshot.py), as of a day.
    def dpa_valid_on(self, today: datetime.date) -> bool:
        """Signed and not yet expired on `today`."""
        return self.status == self.Status.SIGNED and _valid_on(today, self.expires_on)

    def baa_valid_on(self, today: datetime.date) -> bool:
        """A BAA is recorded, not past its own expiry, and the agreement is not terminated."""
        return (
            self.baa
            and self.status != self.Status.TERMINATED
            and _valid_on(today, self.baa_expires_on)
        )

    def standing(self, today: datetime.date) -> str:
        """The status as of `today`, for people: "signed, expires in 20 days", "expired"."""
        if self.status != self.Status.SIGNED:
            return self.get_status_display().lower()
        if self.expires_on is None:
            return "signed, no expiry"
        days = (self.expires_on - today).days
        if days <= 0:
            return "expired"
        return f"signed, expires in {days} day{'s' if days != 1 else ''}"

    def baa_standing(self, today: datetime.date) -> str:
        if not self.baa:
            return "none"
        if not self.baa_valid_on(today):
            return "terminated" if self.status == self.Status.TERMINATED else "expired"
        if self.baa_expires_on is None:
            return "signed, no expiry"
        days = (self.baa_expires_on - today).days
        return f"signed, expires in {days} day{'s' if days != 1 else ''}"


class RequirementSet(models.Model):
    """The compliance requirements of exactly one organization or one team."""

    organization = models.OneToOneField(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compliance_requirements",
    )
    team = models.OneToOneField(
        "tenants.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compliance_requirements",
    )
    requirements = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_requirements],
        help_text="gdpr, hipaa, zdr, no_training. A team also carries its organization's.",
    )
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = "compliance requirements"
        verbose_name_plural = "compliance requirements"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(organization__isnull=False, team__isnull=True)
                    | Q(organization__isnull=True, team__isnull=False)
                ),
                name="compliance_requirements_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.holder}: {', '.join(self.requirements) or 'none'}"

    @property
    def holder(self) -> str:
        if self.team_id:
            return f"team {self.team.slug}"
        if self.organization_id:
            return f"organization {self.organization.slug}"
        return "?"

    def clean(self) -> None:
        # "Exactly one owner" is the check constraint, which full_clean validates (the admin's
        # inline sets the owner only on save, so it is not checked here).
        # Order kept, duplicates dropped: what people typed, once.
        if isinstance(self.requirements, list):
            self.requirements = list(dict.fromkeys(self.requirements))


# --- What the registry sends and shows about itself ------------------------------------------
# ComplianceReminder: one row per reminder (an agreement, a kind of date, that date, how many
# days before it), inserted once: the unique constraint is what makes a reminder go out once,
# however often (and on however many workers) the daily check runs. ComplianceReport: no
# table, a proxy of the agreements that gives the report its entry on the admin index.


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
