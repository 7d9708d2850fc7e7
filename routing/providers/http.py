"""The one place that owns outbound HTTP to providers.

One pooled httpx.AsyncClient per event loop: a new client per request would pay a TCP (and TLS)
handshake every time, which is most of what a gateway can add to latency. Tests fake providers
with real HTTP servers on 127.0.0.1, so nothing here is patched in tests.
"""

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from django.conf import settings

from gateway.perloop import PerLoop


def _new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        # The per-request read timeout comes from the provider; these are the defaults.
        timeout=httpx.Timeout(600.0, connect=settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S),
        limits=httpx.Limits(
            max_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
            max_keepalive_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
            keepalive_expiry=30.0,
        ),
        # Redirects could move a request to a URL no admin configured.
        follow_redirects=False,
        # No ambient configuration (HTTP_PROXY, .netrc): outbound traffic is what admins set.
        trust_env=False,
        # The client is shared by every tenant: a cookie one upstream response sets must not
        # ride along on another team's request. This jar refuses to store any.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


_clients: PerLoop[httpx.AsyncClient] = PerLoop(_new_client)


def client() -> httpx.AsyncClient:
    return _clients.get()


def timeout_for(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S)
