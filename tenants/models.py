"""Who may call the gateway: organizations, teams, projects, members and their API keys.

The proxy caches a snapshot of each key (tenants/keycache.py). Saves and deletes invalidate it
through signals (tenants/signals.py); `QuerySet.update()` sends no signals, so the querysets
below invalidate themselves. Only raw SQL goes unnoticed, bounded by the snapshot's TTL.
"""

import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from . import keycache


def default_tag_keys() -> list[str]:
    return ["use_case", "feature", "environment"]


_TAG_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")


def validate_tag_keys(value) -> None:
    if not isinstance(value, list) or not all(
        isinstance(k, str) and _TAG_KEY.fullmatch(k) for k in value
    ):
        raise ValidationError(
            "a list of tag keys: lower-case letters, digits and '_', at most 32 characters each"
        )


def validate_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"'{name}' is not a known timezone (e.g. UTC, Europe/Paris)") from exc


# Fields whose change does not affect a key's snapshot; updating only these invalidates nothing
# (usage ingestion moves last_used_at constantly).
_UNCACHED_KEY_FIELDS = frozenset({"last_used_at"})
TEAM_IMMUTABLE = "an issued key's team cannot be changed; issue a new key for the other team"


class _InvalidatingQuerySet(models.QuerySet):
    """update() that invalidates the cached snapshots of the keys it affects, on commit."""

    def _affected_key_hashes(self) -> list[str]:
        raise NotImplementedError

    def update(self, **kwargs) -> int:
        with transaction.atomic(using=self.db):
            # Collected first: the update may change what the filter matches.
            key_hashes = self._affected_key_hashes()
            count = super().update(**kwargs)
            keycache.invalidate_on_commit(key_hashes, using=self.db)
        return count

    update.alters_data = True


class OrganizationQuerySet(_InvalidatingQuerySet):
    def _affected_key_hashes(self) -> list[str]:
        return list(
            ApiKey.objects.filter(team__organization__in=self).values_list("key_hash", flat=True)
        )


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    # An inactive organization's keys are refused, as if revoked.
    is_active = models.BooleanField(default=True)
    # Budget periods are calendar months in this timezone (an IANA name such as Europe/Paris).
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # Cost allocation tags a request may carry (x-gateway-tags, or the body's metadata); other
    # keys are refused with 400 (gateway/proxy/tags.py).
    allowed_tag_keys = models.JSONField(
        default=default_tag_keys, blank=True, validators=[validate_tag_keys]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamQuerySet(_InvalidatingQuerySet):
    def _affected_key_hashes(self) -> list[str]:
        return list(ApiKey.objects.filter(team__in=self).values_list("key_hash", flat=True))

    def for_user(self, user) -> "TeamQuerySet":
        """Teams the user belongs to; views use this so they cannot forget the tenant filter."""
        return self.filter(memberships__user=user)


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="teams")
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    cost_center = models.CharField(max_length=100, blank=True)
    # Public model names this team may call; "*" allows every model. Empty allows nothing: a new
    # team starts closed, and an admin opens it deliberately.
    allowed_models = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Project(models.Model):
    """Optional cost-allocation bucket inside a team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    slug = models.SlugField()
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "slug"], name="uniq_project_slug")]
        ordering = ["team__slug", "slug"]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.slug}"


class Membership(models.Model):
    class Role(models.TextChoices):
        # Highest first; tenants/roles.py says what each may do.
        OWNER = "owner", "Owner"
        LEAD = "lead", "Lead"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class ApiKeyQuerySet(_InvalidatingQuerySet):
    def _affected_key_hashes(self) -> list[str]:
        return list(self.values_list("key_hash", flat=True))

    def update(self, **kwargs) -> int:
        if "team" in kwargs or "team_id" in kwargs:
            raise ValidationError({"team": TEAM_IMMUTABLE})
        if kwargs.keys() <= _UNCACHED_KEY_FIELDS:
            return models.QuerySet.update(self, **kwargs)
        return super().update(**kwargs)

    update.alters_data = True

    def active(self) -> "ApiKeyQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A team's key. Only the SHA-256 of the secret is stored; the secret is shown once."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    project = models.ForeignKey(
        Project, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_keys"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    name = models.CharField(max_length=100)
    # The first characters of the secret (e.g. "sk-gw-AbC123"), enough to recognise a key in a
    # list or a leaked-secret report, far too few to use it.
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # Optional narrowing of the team's models for this key; empty means "as the team".
    allowed_models = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        team_saved = update_fields is None or {"team", "team_id"} & set(update_fields)
        if self.pk is not None and team_saved:
            # A key's usage, budget and audit trail belong to the team it was issued to; moving
            # it would re-attribute a secret someone already holds. Checked against the stored
            # row, not a copy taken at load time, so no way of building the object gets past it.
            rows = ApiKey._base_manager.filter(pk=self.pk).values_list("team_id", flat=True)
            stored = rows.first()
            if stored is not None and stored != self.team_id:
                raise ValidationError({"team": TEAM_IMMUTABLE})
        super().save(*args, **kwargs)

    save.alters_data = True

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
