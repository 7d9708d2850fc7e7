"""ASGI entry point: /v1 goes to a middleware-free handler, everything else to the dashboard.

Django applies settings.MIDDLEWARE to every request. The dashboard needs sessions, CSRF and
messages; the proxy needs none of them, and under ASGI each sync middleware costs a thread hop.
So /v1 gets its own handler (gateway/proxy/handler.py: no middleware, no per-request thread;
the readthedocs pattern of a separately tuned serving path), and the proxy views do their own
auth and errors.
"""

import asyncio
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

from django.core.asgi import get_asgi_application

dashboard = get_asgi_application()  # sets Django up; must come before the imports below

from django.conf import settings  # noqa: E402

from gateway import shutdown  # noqa: E402
from gateway.proxy.context import SCOPE_START, new_request_id  # noqa: E402
from gateway.proxy.errors import RequestTooLarge, error_body  # noqa: E402
from gateway.proxy.handler import ProxyHandler  # noqa: E402
from infra import http as upstream_http  # noqa: E402

proxy = ProxyHandler()


def _declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject_too_large(send) -> None:
    limit = settings.GATEWAY_MAX_BODY_BYTES
    exc = RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
    request_id = new_request_id()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": error_body(exc, request_id)})


async def _lifespan(receive, send) -> None:
    """Startup chains the stream drain to the server's SIGTERM/SIGINT handling
    (gateway/shutdown.py); shutdown closes the upstream connection pool cleanly."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            shutdown.drain_streams_on_signals(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await upstream_http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        scope[SCOPE_START] = time.perf_counter()
        length = _declared_length(scope)
        # Refuse before reading: a body over the limit is never buffered (chunked bodies without
        # a length are checked after reading, in the view).
        if length is not None and length > settings.GATEWAY_MAX_BODY_BYTES:
            await _reject_too_large(send)
            return
        await proxy(scope, receive, send)
    else:
        await dashboard(scope, receive, send)
