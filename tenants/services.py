"""Writes for tenants: keys (issue, rotate, revoke, limits) and memberships, keeping the
shared key cache honest. The portal, the API, the admin and the commands all write through
here; each write leaves an audit row (the audit app's capture of the saves, named by the
action the service wraps them in), with the `actor=` given or the one of the audit context."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.context import service_action

from . import keycache, keys
from .models import ApiKey, Membership, Project, Team
from .roles import RANK
from .signals import api_key_rotated


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
    actor=None,
) -> IssuedKey:
    if project is not None and project.team_id != team.pk:
        raise ValueError("project belongs to another team")
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValueError("expires_in_days must be positive")
    secret = keys.generate_secret()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    with service_action("create", actor=actor):
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


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, grace_seconds: int = 0, actor=None) -> IssuedKey:
    """A new secret for the same key: a new ApiKey with the old one's team, project, owner,
    name, allowed models, expiry and limits (its Policy, copied by the policies app through
    the api_key_rotated signal). The old key keeps working for `grace_seconds` (its expiry
    moves to now + grace, never later than it was), or is revoked now when grace is 0."""
    if grace_seconds < 0:
        raise ValidationError({"grace_seconds": "must be 0 or more"})
    # Locked, so two rotations of one key cannot both succeed.
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if not old.is_active:
        raise ValidationError("a revoked or expired key cannot be rotated; issue a new one")
    secret = keys.generate_secret()
    now = timezone.now()
    with service_action("rotate", actor=actor):
        new = ApiKey.objects.create(
            team_id=old.team_id,
            project_id=old.project_id,
            owner_id=old.owner_id,
            name=old.name,
            prefix=keys.shown_prefix(secret),
            key_hash=keys.hash_secret(secret),
            expires_at=old.expires_at,
            allowed_models=list(old.allowed_models),
        )
        api_key_rotated.send(sender=ApiKey, old=old, new=new)
    with service_action("rotate", actor=actor, extra={"replaced_by": [None, str(new)]}):
        if grace_seconds == 0:
            old.revoked_at = now
            old.save(update_fields=["revoked_at"])
        else:
            grace_end = now + timedelta(seconds=grace_seconds)
            if old.expires_at is None or grace_end < old.expires_at:
                old.expires_at = grace_end
                old.save(update_fields=["expires_at"])
    api_key.refresh_from_db()
    return IssuedKey(api_key=new, secret=secret)


def api_key_revoke(*, api_key: ApiKey, actor=None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        with service_action("revoke", actor=actor):
            api_key.save(update_fields=["revoked_at"])
    return api_key


# Key limits are Policy rows of the policies app, above tenants: it plugs its writer in at
# start-up (policies/apps.py), so this module does not import it.
_key_limits_writer: Callable | None = None


def key_limits_writer_register(writer: Callable) -> None:
    global _key_limits_writer
    _key_limits_writer = writer


def api_key_limits_set(
    *,
    api_key: ApiKey,
    rpm: int | None = None,
    tpm: int | None = None,
    budget_usd: Decimal | None = None,
    actor=None,
):
    """The key's own RPM, TPM and monthly budget (its Policy, created or updated), within its
    team's own limits: a value above them raises ValidationError ({field: why}). Returns the
    Policy, or None when nothing was given."""
    if _key_limits_writer is None:
        raise RuntimeError("the policies app is not installed: keys have no limits to set")
    with transaction.atomic(), service_action("limits_set", actor=actor):
        return _key_limits_writer(api_key=api_key, rpm=rpm, tpm=tpm, budget_usd=budget_usd)


def _valid_role(role: str) -> str:
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"unknown role {role!r}"})
    return role


def _keeps_a_head(team_id: int, *, without_pk: int) -> bool:
    """Whether the team still has an owner or a lead apart from membership `without_pk`."""
    heads = (Membership.Role.OWNER, Membership.Role.LEAD)
    return (
        Membership.objects.filter(team_id=team_id, role__in=heads).exclude(pk=without_pk).exists()
    )


def _is_head(role: str) -> bool:
    return RANK[role] >= RANK[Membership.Role.LEAD]


def membership_add(*, team: Team, user, role: str, actor=None) -> Membership:
    _valid_role(role)
    if Membership.objects.filter(team=team, user=user).exists():
        raise ValidationError({"user": f"{user} is already a member of {team}"})
    with service_action("create", actor=actor):
        return Membership.objects.create(team=team, user=user, role=role)


@transaction.atomic
def membership_role_set(*, membership: Membership, role: str, actor=None) -> Membership:
    """Never leaves a team that had an owner or a lead without one (ValidationError)."""
    _valid_role(role)
    # The team's heads are locked, so two demotions at once cannot each see the other left.
    list(Membership.objects.select_for_update().filter(team_id=membership.team_id))
    membership.refresh_from_db()
    if membership.role == role:
        return membership
    if (
        _is_head(membership.role)
        and not _is_head(role)
        and not _keeps_a_head(membership.team_id, without_pk=membership.pk)
    ):
        raise ValidationError(
            {"role": "the team would be left without an owner or lead; appoint another first"}
        )
    membership.role = role
    with service_action("role_change", actor=actor):
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor=None) -> None:
    """Never leaves a team that had an owner or a lead without one (ValidationError)."""
    list(Membership.objects.select_for_update().filter(team_id=membership.team_id))
    membership.refresh_from_db()
    if _is_head(membership.role) and not _keeps_a_head(
        membership.team_id, without_pk=membership.pk
    ):
        raise ValidationError(
            "the team would be left without an owner or lead; appoint another first"
        )
    with service_action("delete", actor=actor):
        membership.delete()


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
