"""Personal access tokens: how scripts and other systems call the management API as a user."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    """What a token may do, on top of what its user's roles allow (never more than them)."""

    READ = "read", "Read: every GET the user's roles allow"
    KEYS = "keys", "Keys: create, rotate, revoke keys and set their limits"
    WRITE = "write", "Write: members, the team's policy"
    ADMIN = "admin", "Admin: organization-wide records (data processing agreements)"


SCOPES = tuple(Scope.values)


class PersonalAccessTokenQuerySet(models.QuerySet):
    def usable(self) -> "PersonalAccessTokenQuerySet":
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class PersonalAccessToken(models.Model):
    """Only the SHA-256 of the token is stored; the token itself is shown once, at creation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # "gwp_" and 8 characters: enough to recognise a token in a list, far too few to use it.
    prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text=f"A subset of {', '.join(SCOPES)}.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Required: a token that never expires is a credential nobody remembers to revoke.
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "personal access token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
