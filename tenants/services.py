"""Writes for tenants: issuing and revoking keys, keeping the shared key cache honest."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from . import keycache, keys
from .models import ApiKey, Project, Team


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # shown once to the caller, never stored


def api_key_issue(
    *,
    team: Team,
    name: str,
    owner=None,
    project: Project | None = None,
    expires_in_days: int | None = None,
    allowed_models: list[str] | None = None,
) -> IssuedKey:
    if project is not None and project.team_id != team.pk:
        raise ValueError("project belongs to another team")
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValueError("expires_in_days must be positive")
    secret = keys.generate_secret()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    api_key = ApiKey.objects.create(
        team=team,
        project=project,
        owner=owner,
        name=name,
        prefix=keys.shown_prefix(secret),
        key_hash=keys.hash_secret(secret),
        expires_at=expires_at,
        allowed_models=allowed_models or [],
    )
    return IssuedKey(api_key=api_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_keys_invalidate(*, key_hashes: list[str]) -> None:
    """Invalidate the keys' cached snapshots once the current transaction commits.

    Saves and updates of keys, teams and organizations do this by themselves; this is for
    changes the ORM cannot see (e.g. after raw SQL).
    """
    keycache.invalidate_on_commit(key_hashes)


def api_keys_mark_used(*, last_used: dict[int, datetime]) -> None:
    """Called by usage ingestion, off the hot path. Only ever moves last_used_at forward."""
    for key_id, used_at in last_used.items():
        ApiKey.objects.filter(pk=key_id).exclude(last_used_at__gte=used_at).update(
            last_used_at=used_at
        )
