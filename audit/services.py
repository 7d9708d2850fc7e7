"""Writing audit rows. `audit_record` is the one way in: the generic capture of model saves
(audit/capture.py) and the services that do something richer than a save both call it."""

import getpass

from .context import current, current_actor
from .masking import mask_changes
from .models import AuditEvent

_REPR_LEN = 200


def object_type_of(obj) -> str:
    return obj._meta.label_lower  # "tenants.apikey"


def team_id_of(obj) -> int | None:
    """The team an object belongs to, when it has one: the team itself, its team_id, or its
    key's or project's team. Read defensively: during a cascade the parent may be gone."""
    if obj._meta.label_lower == "tenants.team":
        return obj.pk
    team_id = getattr(obj, "team_id", None)
    if team_id is not None:
        return team_id
    for relation in ("api_key", "project"):
        if getattr(obj, f"{relation}_id", None) is not None:
            try:
                return getattr(obj, relation).team_id
            except Exception:  # a parent deleted in the same cascade
                return None
    return None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        return ""


def _actor_repr(actor, source: str) -> str:
    if actor is None:
        # A command has no user; the account that ran it is the next best thing.
        user = _os_user() if source == "cli" else ""
        return f"{user} (os user)" if user else ""
    return (actor.get_username() if hasattr(actor, "get_username") else str(actor))[:_REPR_LEN]


def audit_record(
    *,
    action: str,
    obj=None,
    object_type: str | None = None,
    object_id=None,
    object_repr: str | None = None,
    changes: dict | None = None,
    team_id: int | None = None,
    actor=None,
) -> AuditEvent:
    """Record one event. Who, from where and the request id come from the audit context
    (audit/context.py) unless `actor` is given; `changes` is masked here, whoever built it."""
    ctx = current()
    if actor is None:
        actor = current_actor(ctx)
    if obj is not None:
        object_type = object_type or object_type_of(obj)
        object_id = obj.pk if object_id is None else object_id
        object_repr = str(obj) if object_repr is None else object_repr
        team_id = team_id_of(obj) if team_id is None else team_id
    return AuditEvent.objects.create(
        actor_id=actor.pk if actor is not None else None,
        actor_repr=_actor_repr(actor, ctx.source),
        source=ctx.source,
        ip=ctx.ip or None,
        action=action,
        object_type=object_type or "",
        object_id="" if object_id is None else str(object_id)[:64],
        object_repr=(object_repr or "")[:_REPR_LEN],
        team_id=team_id,
        changes=mask_changes(changes),
        request_id=(ctx.request_id or "")[:64],
    )
