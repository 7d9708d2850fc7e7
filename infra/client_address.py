"""Who is calling, by network address: the socket peer, or the client a trusted proxy vouches for.

One rule for everything that keys on the client's address: refusal logs and the failed-auth
throttle on /v1, and the admin login throttle (django-ratelimit's RATELIMIT_IP_META_KEY). The
ASGI server is run with --no-proxy-headers, so this module alone decides whose X-Forwarded-For
is believed: only that of GATEWAY_TRUSTED_PROXIES.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings

_MAX_ADDRESS_LEN = 64  # whatever a proxy relayed, it does not get to fill a log line or a key


def scope_header(scope, name: bytes) -> str | None:
    """A request header straight from the ASGI scope (repeats joined with commas)."""
    values = [value for key, value in scope.get("headers", ()) if key == name]
    return b",".join(values).decode("latin-1") if values else None


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(scope) -> str:
    """The caller's address: the socket peer, or, when that peer is a trusted proxy
    (GATEWAY_TRUSTED_PROXIES), the nearest X-Forwarded-For hop that is not one.

    Read from the right: each trusted proxy appends the address it saw, so the right-most
    untrusted entry is the first one no trusted party vouches for. Entries left of it may be
    anything the client wrote.
    """
    client = scope.get("client")
    peer = client[0] if client else ""
    networks = _networks(tuple(settings.GATEWAY_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in (scope_header(scope, b"x-forwarded-for") or "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop[:_MAX_ADDRESS_LEN]
    return hops[0][:_MAX_ADDRESS_LEN] if hops else peer


def of_request(request) -> str:
    """client_address for a Django request; django-ratelimit calls it for its "ip" key."""
    scope = getattr(request, "scope", None)
    if scope is None:  # a request built without an ASGI server (WSGI, test client)
        return (request.META.get("REMOTE_ADDR") or "unknown")[:_MAX_ADDRESS_LEN]
    return client_address(scope) or "unknown"
