"""Requests that end without a usage row: counted and logged here instead.

A usage row needs a tenant. A request refused before the gateway knows who is calling (no key,
a bad key, a body too large or too slow, an unknown path, a wrong method) has none, yet these are
exactly what an operator wants to see when a client is misconfigured or someone is probing. Each
gets one structured log line (request id, status, reason, client address) and a count in
`REFUSALS`, a process-local tally by (status, reason) that a metrics exporter can read.

The key is never logged: only its visible prefix (`sk-gw-` and 6 characters, as shown in the
portal), and only when it has our format; anything else a client sends as a key might be a
credential for some other system.
"""

import logging
from collections import Counter

from infra.client_address import client_address, scope_header
from tenants.keys import KEY_PREFIX, SHOWN_PREFIX_LEN

from . import metrics
from .errors import GatewayError

_log = logging.getLogger("gateway.refusals")

# (status, reason) -> refusals since this process started.
REFUSALS: Counter[tuple[int, str]] = Counter()

# Refusals that may be abuse (or a dependency down) rather than a client's honest mistake.
_WARN = frozenset({408, 413})


def shown_key_prefix(scope) -> str:
    """The presented key's visible prefix if it is one of ours, else ""."""
    token = ""
    authorization = scope_header(scope, b"authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
    # Then the dialects' own headers: Azure clients' `api-key`, Anthropic clients' `x-api-key`.
    for name in (b"api-key", b"x-api-key"):
        if not token:
            token = (scope_header(scope, name) or "").strip()
    if token.startswith(KEY_PREFIX) and len(token) > SHOWN_PREFIX_LEN:
        return token[:SHOWN_PREFIX_LEN]
    return ""


def record(scope, exc: GatewayError, request_id: str, *, log: bool = True) -> None:
    """Count one refused request, and log it unless `log` is off (a flood the caller already
    logs at a bounded rate: load shedding)."""
    reason = exc.error_type
    REFUSALS[(exc.status, reason)] += 1
    metrics.request_refused(exc)
    level = logging.WARNING if exc.status in _WARN or exc.status >= 500 else logging.INFO
    if not log or not _log.isEnabledFor(level):
        return
    fields = {
        "event": "request_refused",
        "request_id": request_id,
        "status": exc.status,
        "reason": reason,
        "client": client_address(scope),
        "method": scope.get("method", ""),
        "path": scope.get("path", ""),
        "key_prefix": shown_key_prefix(scope),
    }
    _log.log(
        level,
        "refused %s %s with %s (%s): %s",
        fields["method"],
        fields["path"],
        exc.status,
        reason,
        exc.message,
        extra=fields,
    )
