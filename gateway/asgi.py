"""ASGI entry point: the proxy's paths (/v1, and /openai for Azure-style clients) go to a
middleware-free handler, everything else to the dashboard.

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

from gateway.startup import check_or_exit

check_or_exit()  # refuses to serve on a configuration error; see gateway/startup.py
dashboard = get_asgi_application()  # sets Django up; must come before the imports below

from gateway import gctune, shutdown  # noqa: E402
from gateway.proxy import batched, metrics, tracing  # noqa: E402
from gateway.proxy.context import SCOPE_START, settle_pending, usage_replayer  # noqa: E402
from gateway.proxy.handler import ProxyHandler  # noqa: E402
from infra import http as upstream_http  # noqa: E402
from infra import snapshot  # noqa: E402

snapshot.set_build_observer(metrics.snapshot_built)
tracing.configure()  # OpenTelemetry, when configured (gateway/proxy/tracing.py); else nothing
proxy = ProxyHandler()
# A root span per request when tracing is on; the handler itself when off.
traced_proxy = tracing.asgi(proxy)
# Path prefixes the proxy serves: OpenAI's /v1, and Azure OpenAI's /openai (gateway/proxy/azure.py).
PROXY_PREFIXES = ("/v1/", "/openai/")
# Served by the same middleware-free handler, untraced: a scraper may address the server by IP
# (no ALLOWED_HOSTS entry needed) and needs no session (gateway/metrics.py).
METRICS_PATH = "/metrics"
# Last: start-up is done, so what it allocated can be frozen (gateway/gctune.py).
gctune.apply()


async def _lifespan(receive, send) -> None:
    """Startup starts replaying spooled usage events (left by an outage, maybe by a previous
    run), chains the drain to the server's SIGTERM/SIGINT handling (gateway/shutdown.py), and
    starts writing the batched histograms out every second (gateway/proxy/batched.py);
    shutdown waits for settlements still running, stops the replayer and the writer and closes
    the upstream connection pool."""
    flusher = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            usage_replayer.ensure_started()
            flusher = asyncio.create_task(batched.flush_periodically())
            shutdown.drain_streams_on_signals(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # Usage events of requests the server cancelled at its graceful timeout, if any.
            await settle_pending()
            await usage_replayer.stop()
            if flusher is not None:
                flusher.cancel()
            await upstream_http.aclose()
            tracing.shutdown()  # the spans still queued
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http" and scope["path"].startswith(PROXY_PREFIXES):
        scope[SCOPE_START] = time.perf_counter()
        # The handler reads the body itself, bounded in size and time (gateway/proxy/handler.py).
        await traced_proxy(scope, receive, send)
    elif scope["type"] == "http" and scope["path"] == METRICS_PATH:
        await proxy.serve(scope, receive, send)  # not counted against the in-flight limit
    else:
        await dashboard(scope, receive, send)
