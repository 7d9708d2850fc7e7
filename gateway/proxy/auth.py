"""Who is calling: SHA-256 of the presented key -> process cache -> Redis -> database.

Only hashes are compared, cached and queried; the raw key never reaches a query, a log line or
an error message. A failing Redis or database is a 503, never a 401: a key must not look
invalid because a dependency is down.
"""

import time

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest

from infra.db import db_call
from infra.state import StateUnavailable, get_state
from tenants.keys import hash_secret
from tenants.selectors import KeyPrincipal, api_key_principal_get
from tenants.services import key_cache_name

from .errors import AuthenticationFailed, ServiceUnavailable

# Unknown keys are remembered too, so a flood of bad keys does not become a flood of queries.
_NEGATIVE = b"null"
_NEGATIVE_TTL_S = 60
_LOCAL_MAX = 50_000


class _LocalCache:
    """Tiny TTL map; the TTL bounds how stale a revocation can be in this process."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, KeyPrincipal | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, KeyPrincipal | None]:
        item = self._items.get(key_hash)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key_hash: str, principal: KeyPrincipal | None) -> None:
        if len(self._items) >= _LOCAL_MAX:
            self._items.clear()  # crude, but bounded; a refill costs one Redis GET per key
        self._items[key_hash] = (time.monotonic() + settings.GATEWAY_KEY_CACHE_TTL_S, principal)

    def clear(self) -> None:
        self._items.clear()


local_cache = _LocalCache()


def presented_key(request: HttpRequest) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    # Azure OpenAI clients send the key in `api-key` (some with an empty Authorization beside).
    token = request.headers.get("api-key")
    return token.strip() if token and token.strip() else None


async def _lookup(key_hash: str) -> KeyPrincipal | None:
    found, principal = local_cache.get(key_hash)
    if found:
        return principal
    state = get_state()
    name = key_cache_name(key_hash)
    try:
        cached = await state.aget(name)
    except StateUnavailable as exc:
        raise ServiceUnavailable.of("state store") from exc
    if cached is not None:
        principal = None if cached == _NEGATIVE else KeyPrincipal.from_dict(orjson.loads(cached))
    else:
        try:
            principal = await db_call(api_key_principal_get, key_hash=key_hash)
        except DatabaseError as exc:
            raise ServiceUnavailable.of("database") from exc
        value = _NEGATIVE if principal is None else orjson.dumps(principal.to_dict())
        ttl = _NEGATIVE_TTL_S if principal is None else settings.GATEWAY_SHARED_KEY_CACHE_TTL_S
        try:
            await state.aset(name, value, ttl)
        except StateUnavailable as exc:
            raise ServiceUnavailable.of("state store") from exc
    local_cache.put(key_hash, principal)
    return principal


async def authenticate(request: HttpRequest) -> KeyPrincipal:
    secret = presented_key(request)
    if secret is None:
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>' (or an 'api-key' header)"
        )
    principal = await _lookup(hash_secret(secret))
    if principal is None:
        raise AuthenticationFailed("invalid API key")
    if principal.revoked:
        raise AuthenticationFailed("this API key has been revoked", code="revoked_api_key")
    if principal.expires_at is not None and principal.expires_at <= time.time():
        raise AuthenticationFailed("this API key has expired", code="expired_api_key")
    return principal
