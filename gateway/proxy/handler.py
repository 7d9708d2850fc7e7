"""The ASGI handler that serves /v1: Django's request and response objects, none of its per-request
thread machinery.

Django's ASGIHandler is built for views that may call sync code. Per request it
- runs everything inside a fresh `ThreadSensitiveContext`, so the first `sync_to_async` call of
  the request starts a new OS thread, which is joined when the request ends;
- sends `request_started` and (through `response.close()`) `request_finished`, whose receivers
  are sync and each cost a hop to that thread;
- runs the whole settings.MIDDLEWARE chain.

Profiling `make bench` showed the thread start/join and hops at 11-17% of the event loop's time.
The proxy needs none of it: it has no middleware, touches the database only on cache misses
(through infra.db.db_call, which also does the connection hygiene those signals exist for),
and owns its errors. So this handler keeps Django's request building, URL routing and response
sending, and drops the rest. It also runs the usage settlement after the response is on the
wire, so the client never waits for it.

It reads the body itself, instead of Django's `read_body` (which spools whatever arrives to a
temporary file and only then lets anyone look at it): bytes are counted as they arrive, so an
oversized chunked body is refused at the first chunk past the limit, and the whole read has a
deadline, so a client that stalls half-way gets a 408 instead of holding the connection.

Past capacity it sheds load: at GATEWAY_MAX_IN_FLIGHT requests in flight in this process (a
stream counts until its last byte or its client's disconnect), one more is answered at once
with a 503 `overloaded` and Retry-After: 1, before its body is read. Nothing is queued, so the
process never holds more than the limit, and serves again the moment a request ends.
"""

import asyncio
import contextlib
import io
import sys
import time

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from routing.formats import anthropic_error_type

from . import refusals
from .context import new_request_id
from .dialects.anthropic import FORMAT as ANTHROPIC_FORMAT
from .errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    RequestTimeout,
    RequestTooLarge,
    error_body,
)

# Set by the pipeline on a non-streaming response: the coroutine function that records usage.
AFTER_RESPONSE = "_gateway_after_response"
# Marks requests served here, so the pipeline knows the settlement will be run after sending.
SCOPE_DEFERS_SETTLE = "gateway.defers_settle"
# Anthropic's clients get its error shape even before the pipeline knows their dialect.
_ANTHROPIC_PREFIX = "/v1/messages"
# Shed requests are logged at most this often per process (each is counted in the metrics).
_SHED_LOG_INTERVAL_S = 1.0


class ProxyHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # Proxy requests in flight in this process: a plain integer, only ever touched on the
        # event loop, so no lock. Read once: the check per request is one compare.
        self.in_flight = 0
        self.max_in_flight = settings.GATEWAY_MAX_IN_FLIGHT or sys.maxsize  # 0: no limit
        self._shed_logged_at = -_SHED_LOG_INTERVAL_S

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send) -> None:
        """A proxy request, counted while in flight (see the module docstring)."""
        if self.in_flight >= self.max_in_flight:
            await self._shed(scope, send)
            return
        self.in_flight += 1
        try:
            await self.serve(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope, send) -> None:
        now = time.monotonic()
        log = now - self._shed_logged_at >= _SHED_LOG_INTERVAL_S
        if log:
            self._shed_logged_at = now
        await send_refusal(scope, send, Overloaded(self.max_in_flight), log=log)

    async def serve(self, scope, receive, send) -> None:
        """One request, uncounted: /metrics is served here, so a scrape still answers under
        overload."""
        scope[SCOPE_DEFERS_SETTLE] = True
        try:
            body = await read_body(scope, receive)
        except RequestAborted:
            return
        except GatewayError as exc:
            await send_refusal(scope, send, exc)
            return
        request, _ = self.create_request(scope, io.BytesIO(body))
        if request is None:
            # Django could not build a request (a query string that is not UTF-8).
            await send_refusal(scope, send, BadRequest("the request URL is not valid UTF-8"))
            return
        await self._serve_until_disconnect(request, receive, send)

    async def _serve_until_disconnect(self, request, receive, send) -> None:
        # As Django does: a client that goes away cancels the view (or the stream), so the
        # pipeline can record a 499 and release the upstream connection.
        serve = asyncio.create_task(self._serve(request, send))
        listen = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([serve, listen], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listen, serve):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task

    async def _serve(self, request, send) -> None:
        response = await self._middleware_chain(request)
        after = getattr(response, AFTER_RESPONSE, None)
        try:
            await self.send_response(response, send)
        finally:
            if after is not None:
                # Shielded: a disconnect right after the last byte must not lose the usage row.
                await after()


def _declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large() -> RequestTooLarge:
    limit = settings.GATEWAY_MAX_BODY_BYTES
    return RequestTooLarge(f"request body is larger than the limit of {limit} bytes")


async def read_body(scope, receive) -> bytes:
    """The request body, refused (RequestTooLarge, RequestTimeout) as soon as it is known to be
    too large or too slow; RequestAborted when the client disconnects first."""
    limit = settings.GATEWAY_MAX_BODY_BYTES
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise _too_large()  # refused before a byte of it is read
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.GATEWAY_BODY_READ_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large()  # a chunked body has no length to check up front
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {settings.GATEWAY_BODY_READ_TIMEOUT_S:g} s"
        ) from None
    # Usually the whole body comes in one message: no copy then.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _refusal_body(scope, exc: GatewayError, request_id: str) -> bytes:
    if scope.get("path", "").startswith(_ANTHROPIC_PREFIX):
        return ANTHROPIC_FORMAT.error_body(
            exc.status, anthropic_error_type(exc.status), exc.message, request_id=request_id
        )
    return error_body(exc, request_id)


async def send_refusal(scope, send, exc: GatewayError, *, log: bool = True) -> None:
    """An error sent before a request object exists. The connection is closed after it: the
    client may still be sending a body nobody will read, so the connection cannot be reused."""
    request_id = new_request_id()
    refusals.record(scope, exc, request_id, log=log)
    body = _refusal_body(scope, exc, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"connection", b"close"),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
