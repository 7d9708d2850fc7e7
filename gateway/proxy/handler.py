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
and owns its errors. So this handler keeps Django's body reading, request building, URL routing
and response sending, and drops the rest. It also runs the usage settlement after the response
is on the wire, so the client never waits for it.
"""

import asyncio
import contextlib

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

# Set by the pipeline on a non-streaming response: the coroutine function that records usage.
AFTER_RESPONSE = "_gateway_after_response"
# Marks requests served here, so the pipeline knows the settlement will be run after sending.
SCOPE_DEFERS_SETTLE = "gateway.defers_settle"
# Settlements still running after their request was cancelled; strong references keep the event
# loop from garbage-collecting them half-way.
_settling: set[asyncio.Task] = set()


class ProxyHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send) -> None:
        scope[SCOPE_DEFERS_SETTLE] = True
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                return
            await self._serve_until_disconnect(request, receive, send)
        finally:
            body_file.close()

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
                task = asyncio.ensure_future(after())
                _settling.add(task)
                task.add_done_callback(_settling.discard)
                await asyncio.shield(task)
