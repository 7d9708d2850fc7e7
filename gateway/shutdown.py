"""Graceful shutdown for streams: on SIGTERM or SIGINT, streams still open after
GATEWAY_SHUTDOWN_TIMEOUT_S end with an error event and are settled (their usage row written).

uvicorn, on SIGTERM, stops accepting connections and waits for the open ones, up to its
--timeout-graceful-shutdown; then it cancels them. A cancelled stream looks like a client that
hung up: the client gets no explanation and the usage row says 499. A stream may last minutes,
so the gateway starts a shorter clock of its own at the signal and, when it runs out, aborts
each open stream's upstream response: the relay's ordinary error path then sends the client an
error event (code gateway_shutting_down) and settles. Set the server's graceful timeout above
ours (the Makefile and docker/entrypoint.sh do).

The server's signal handling is uvicorn's: it installs its handlers before the lifespan
startup, where this module chains its own in front of them (uvicorn's still run).
"""

import asyncio
import contextlib
import logging
import signal
import threading

from django.conf import settings

from gateway.proxy.streaming import end_open_streams

log = logging.getLogger("gateway.shutdown")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_drain: asyncio.TimerHandle | None = None


def drain_streams_on_signals(loop: asyncio.AbstractEventLoop) -> bool:
    """Chain a stream drain in front of the server's SIGTERM/SIGINT handlers. Returns whether
    it could: signals reach only the main thread, and only a server's own handler is chained
    (with none, the signal's default action is left alone)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = False
    for sig in _SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            # Runs between two bytecodes of the main thread: hand over to the event loop
            # (unless it is gone: a finished server in a test run, say).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_start_drain)
            previous(signum, frame)

        signal.signal(sig, handler)
        installed = True
    return installed


def _start_drain() -> None:
    global _drain
    if _drain is not None:
        return
    timeout = settings.GATEWAY_SHUTDOWN_TIMEOUT_S
    log.info("shutting down: streams still open in %g s will be ended", timeout)
    _drain = asyncio.get_running_loop().call_later(timeout, _end_streams)


def _end_streams() -> None:
    ended = end_open_streams()
    if ended:
        log.warning("shutdown: ended %d open stream(s) with an error event", ended)
