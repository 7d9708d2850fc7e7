"""Writes of the API app: personal access tokens."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.context import service_action

from . import tokens
from .models import SCOPES, PersonalAccessToken


@dataclass(frozen=True)
class IssuedToken:
    token: PersonalAccessToken
    secret: str  # shown once to the caller, never stored


def pat_create(
    *, user, name: str, scopes: list[str], expires_in_days: int, actor=None
) -> IssuedToken:
    """Raises ValidationError for unknown scopes or an expiry outside 1..the maximum."""
    max_days = settings.GATEWAY_API_TOKEN_MAX_DAYS
    errors = {}
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        errors["scopes"] = f"one or more of {', '.join(SCOPES)}" + (
            f"; unknown: {', '.join(unknown)}" if unknown else ""
        )
    if not 1 <= expires_in_days <= max_days:
        errors["expires_in_days"] = f"between 1 and {max_days} days"
    if not name.strip():
        errors["name"] = "required"
    if errors:
        raise ValidationError(errors)
    secret = tokens.generate_token()
    with service_action("create", actor=actor or user):
        token = PersonalAccessToken.objects.create(
            user=user,
            name=name.strip(),
            prefix=tokens.shown_prefix(secret),
            token_hash=tokens.hash_token(secret),
            # Stored in one order, so two tokens with the same rights look the same.
            scopes=[s for s in SCOPES if s in scopes],
            expires_at=timezone.now() + timedelta(days=expires_in_days),
        )
    return IssuedToken(token=token, secret=secret)


def pat_revoke(*, token: PersonalAccessToken, actor=None) -> PersonalAccessToken:
    if token.revoked_at is None:
        with service_action("revoke", actor=actor):
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
    return token


# last_used_at is written at most this often per token: a script calling the API in a loop
# should not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def pat_mark_used(*, token: PersonalAccessToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # update(), not save(): no signal, so no audit row for a mere use.
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
