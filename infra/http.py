"""The one place that owns outbound HTTP to providers.

The API is httpx's: one pooled `httpx.AsyncClient` per event loop (a new client per request would
pay a TCP and TLS handshake every time). Underneath, the transport is aiohttp through
httpx-aiohttp (maintained by an httpx maintainer; the OpenAI SDK offers the same option):
`make bench` measured httpx's default transport (httpcore, h11, anyio, all pure Python) at about
half of the gateway's CPU per request, and aiohttp's C-accelerated HTTP parser cut the gateway's
added latency by the margin that brings it under its 2 ms target (docs/performance.md).

Timeouts: the transport gets only the connect timeout (request_timeout). The wait for the first
byte, each gap between chunks and the whole attempt are different limits, kept by the callers;
a response can be aborted from outside its reading task (abort) and bodies are read with a size
limit (read_body).

Tests fake providers with real HTTP servers on 127.0.0.1, so nothing here is patched in tests.
"""

import asyncio
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx
import yarl
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

from infra.perloop import PerLoop

_KEEPALIVE_S = 30.0


def _session() -> aiohttp.ClientSession:
    # Created by the transport on its first request, i.e. inside the running event loop.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS, keepalive_timeout=_KEEPALIVE_S
        ),
        # Shared by every tenant: a cookie one upstream response sets must not ride along on
        # another team's request (httpx keeps a jar of its own too, refused below).
        cookie_jar=aiohttp.DummyCookieJar(),
        # No ambient configuration (HTTP_PROXY, .netrc): outbound traffic is what admins set.
        trust_env=False,
    )


def _new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(client=_session),
        # Defaults only: provider calls pass their own (request_timeout).
        timeout=httpx.Timeout(600.0, connect=settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S),
        # Redirects could move a request to a URL no admin configured.
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


_clients: PerLoop[httpx.AsyncClient] = PerLoop(_new_client)


def client() -> httpx.AsyncClient:
    return _clients.get()


def wire_url(url: str) -> str:
    """`url` exactly as the transport puts it on the wire: httpx's normalization, then
    aiohttp's (yarl), which for one decodes a percent-encoded character that a path may hold
    as it is ("%3A" is sent as ":"). A request signature (SigV4) must cover this form."""
    return str(yarl.URL(str(httpx.URL(url))))


async def aclose() -> None:
    """Close this event loop's client and its connections (server shutdown)."""
    current = _clients.pop()
    if current is not None:
        await current.aclose()


def request_timeout(connect_s: float) -> httpx.Timeout:
    """A request's transport timeouts: only the connect timeout.

    httpx's read timeout would put one limit on every read: the wait for the response and each
    gap between chunks alike. Callers keep their own (first byte, idle, whole attempt) instead.
    """
    return httpx.Timeout(None, connect=connect_s)


# Closes started by `abort`, kept referenced until done.
_aborting: set[asyncio.Task] = set()


def abort(response: httpx.Response) -> None:
    """Close a response from outside the task reading it (a timer, a shutdown).

    The reader's pending read then fails at once with a transport error, so it goes down its
    ordinary error path. Safe to call on a response that is closed already.
    """
    if response.is_closed:
        return
    task = asyncio.ensure_future(response.aclose())
    _aborting.add(task)
    task.add_done_callback(_aborting.discard)


class ResponseTooLarge(Exception):
    """An upstream body over the caller's limit; reading stopped at the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upstream response is larger than {limit} bytes")
        self.limit = limit


async def read_body(response: httpx.Response, *, limit: int, idle_s: float | None = None) -> bytes:
    """Read a streamed response's body, refusing more than `limit` bytes (decoded).

    httpx's own `aread()` buffers whatever the server sends; an upstream that never stops (or a
    compressed bomb) would take the process's memory with it. With `idle_s`, a gap of that long
    between two chunks raises TimeoutError.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit)
    pieces: list[bytes] = []
    size = 0
    chunks = response.aiter_bytes()
    while True:
        # A body is a few chunks: one timer each costs less than reaching into the transport.
        async with asyncio.timeout(idle_s):
            chunk = await anext(chunks, None)
        if chunk is None:
            break
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(limit)
        pieces.append(chunk)
    return b"".join(pieces)


def is_timeout(exc: httpx.TransportError) -> bool:
    """Whether a transport error was a timeout (504) rather than a failed connection (502/503).

    httpx-aiohttp maps every aiohttp connection error, a server hanging up included, to
    httpx.ConnectTimeout; the aiohttp error it wraps says what really happened.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError | TimeoutError):
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)
