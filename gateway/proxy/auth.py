"""Who is calling: SHA-256 of the presented key -> process cache -> Redis -> database.

Only hashes are compared, cached and queried; the raw key never reaches a query, a log line or
an error message. A failing Redis or database is a 503, never a 401: a key must not look
invalid because a dependency is down.

Costs, by path:
- process-cache hit (the steady state): no I/O at all;
- process-cache miss: one Redis round trip (MGET of the key's snapshot, its generation and the
  caller's failure counter), then, if Redis has no snapshot, one bounded database call
  (infra.db.db_call_bounded) and one compare-and-set of the new snapshot (tenants/keycache.py);
- a failure: one more round trip, to count it (gateway/proxy/throttle.py).
"""

import contextlib
import logging
import time
from collections import OrderedDict

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest

from infra.db import db_call_bounded
from infra.singleflight import SingleFlight
from infra.state import StateUnavailable, get_state
from tenants import keycache
from tenants.keys import hash_secret
from tenants.selectors import KeyPrincipal, api_key_principal_get

from . import throttle, tracing
from .errors import AuthenticationFailed, ServiceUnavailable

log = logging.getLogger("gateway.auth")

_NEGATIVE = b"null"


class _LocalCache:
    """A size-bounded LRU map with a TTL; the TTL bounds how stale a revocation can be here.

    When full, the least recently used entry goes (a hit moves its key to the end), instead of
    the whole map: clearing everything would send every caller to Redis at once.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, KeyPrincipal | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key_hash: str) -> tuple[bool, KeyPrincipal | None]:
        item = self._items.get(key_hash)
        if item is None:
            return False, None
        if item[0] < time.monotonic():
            del self._items[key_hash]
            return False, None
        self._items.move_to_end(key_hash)
        return True, item[1]

    def put(self, key_hash: str, principal: KeyPrincipal | None) -> None:
        items = self._items
        items[key_hash] = (time.monotonic() + settings.GATEWAY_KEY_CACHE_TTL_S, principal)
        items.move_to_end(key_hash)
        while len(items) > settings.GATEWAY_KEY_CACHE_SIZE:
            items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


local_cache = _LocalCache()
_lookups: SingleFlight[KeyPrincipal | None] = SingleFlight()


def clear_process_state() -> None:
    """Forget cached keys and blocked addresses (tests)."""
    local_cache.clear()
    throttle.blocked.clear()


def presented_key(request: HttpRequest, key_header: str = "api-key") -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    # The dialect's own header: Azure OpenAI clients send the key in `api-key` (some with an
    # empty Authorization beside), Anthropic's in `x-api-key`.
    token = request.headers.get(key_header)
    return token.strip() if token and token.strip() else None


def _decode(cached: bytes) -> tuple[bool, KeyPrincipal | None]:
    if cached == _NEGATIVE:
        return True, None
    try:
        return True, KeyPrincipal.from_dict(orjson.loads(cached))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        # Written by another version of the gateway (a rolling upgrade): reload it.
        return False, None


def _encode(principal: KeyPrincipal | None) -> tuple[bytes, int]:
    if principal is None:
        return _NEGATIVE, settings.GATEWAY_NEGATIVE_KEY_CACHE_TTL_S
    return orjson.dumps(principal.to_dict()), settings.GATEWAY_SHARED_KEY_CACHE_TTL_S


async def _shared_lookup(request: HttpRequest, key_hash: str) -> KeyPrincipal | None:
    """Redis, then the database; the caller's failure count comes along in the same MGET."""
    state = get_state()
    names = [keycache.snapshot_name(key_hash), keycache.generation_name(key_hash)]
    counter = throttle.counter_name(request)
    if counter is not None:
        names.append(counter)
    try:
        values = await state.amget(*names)
    except StateUnavailable as exc:
        raise ServiceUnavailable.of("state store") from exc
    if counter is not None:
        # Before any database work: an address guessing keys gets 429, not more lookups.
        throttle.check_count(request, values[2])
    if values[0] is not None:
        found, principal = _decode(values[0])
        if found:
            return principal
    try:
        # Concurrent first requests of one key share one lookup (infra/singleflight.py).
        principal = await _lookups.run(
            key_hash, lambda: db_call_bounded(api_key_principal_get, key_hash=key_hash)
        )
    except DatabaseError as exc:
        raise ServiceUnavailable.of("database") from exc
    value, ttl = _encode(principal)
    seen_generation = int(values[1] or 0)
    # Written only if no invalidation happened since the MGET: a lookup that loaded the row
    # before a revocation must not put it back after (tenants/keycache.py). If Redis is gone
    # meanwhile, the database's answer still stands; the next miss asks it again.
    with contextlib.suppress(StateUnavailable):
        await state.run_script(keycache.FILL, names[:2], [seen_generation, value, ttl])
    return principal


def _refusal(principal: KeyPrincipal | None) -> tuple[str, str] | None:
    if principal is None:
        return "invalid API key", "invalid_api_key"
    if principal.revoked:
        return "this API key has been revoked", "revoked_api_key"
    if principal.expires_at is not None and principal.expires_at <= time.time():
        return "this API key has expired", "expired_api_key"
    return None


@tracing.traced("gateway.auth")
async def authenticate(request: HttpRequest, key_header: str = "api-key") -> KeyPrincipal:
    if throttle.blocked:
        throttle.refuse_if_blocked(request)  # no I/O: this process already counted enough
    secret = presented_key(request, key_header)
    if secret is None:
        await throttle.failed(request)
        raise AuthenticationFailed(
            f"missing API key: send 'Authorization: Bearer <key>' (or an '{key_header}' header)"
        )
    key_hash = hash_secret(secret)
    found, principal = local_cache.get(key_hash)
    if not found:
        principal = await _shared_lookup(request, key_hash)
        local_cache.put(key_hash, principal)
    refusal = _refusal(principal)
    if refusal is not None:
        message, code = refusal
        await throttle.failed(request)
        raise AuthenticationFailed(message, code=code)
    return principal
