"""Who is acting, from where: a context variable that the audit records read.

The middleware (audit/middleware.py) sets it for the admin, portal and API requests; the
management commands that change things run with source "cli"; everything else (workers,
shells without manage.py) records as "system". Services pass `actor=` explicitly when they know
better than the context, and name what they do (`action=`) so the rows their saves produce say
"revoke" rather than "update".
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True)
class AuditContext:
    actor: Any = None  # a user, or None
    # The request being served, if any: its user is read when a row is written, not when the
    # request starts, so an API token authenticated by the view (after the middleware) counts.
    request: Any = None
    source: str = "system"
    ip: str | None = None
    request_id: str = ""
    # What the surrounding service does: the updates recorded inside take this action name
    # (creations and deletions stay "create" and "delete"), and these extra changes.
    action: str | None = None
    extra: dict | None = None


# A frozen dataclass: the default is never mutated, only replaced.
_current: ContextVar[AuditContext] = ContextVar("audit_context", default=AuditContext())  # noqa: B039


def current() -> AuditContext:
    return _current.get()


def current_actor(ctx: AuditContext | None = None):
    """Who acts: the context's actor, else the user of the request being served (None when
    anonymous)."""
    ctx = ctx or _current.get()
    actor = ctx.actor
    if actor is None and ctx.request is not None:
        actor = getattr(ctx.request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        return None
    return actor


def set_default_source(source: str) -> None:
    """For a whole process (manage.py sets "cli" before running any command)."""
    _current.set(replace(_current.get(), source=source))


@contextlib.contextmanager
def audit_context(
    *,
    actor=_UNSET,
    request=_UNSET,
    source=_UNSET,
    ip=_UNSET,
    request_id=_UNSET,
    action=_UNSET,
    extra=_UNSET,
) -> Iterator[AuditContext]:
    """Within the block, records carry these values; what is not given is inherited."""
    given = {
        name: value
        for name, value in (
            ("actor", actor),
            ("request", request),
            ("source", source),
            ("ip", ip),
            ("request_id", request_id),
            ("action", action),
            ("extra", extra),
        )
        if value is not _UNSET
    }
    token = _current.set(replace(_current.get(), **given))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


@contextlib.contextmanager
def service_action(action: str, *, actor=None, extra: dict | None = None) -> Iterator[AuditContext]:
    """What a service wraps its writes in: names the action (and extra changes, e.g. the key
    a rotation replaced), and puts the actor it was given, if any, in place of the context's."""
    given = {"action": action, "extra": extra}
    if actor is not None:
        given["actor"] = actor
    with audit_context(**given) as ctx:
        yield ctx
