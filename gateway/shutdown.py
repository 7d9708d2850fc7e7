"""Graceful shutdown: on SIGTERM or SIGINT this process is at once not ready (/readyz answers
503) and stops taking connections; requests and streams in flight drain; streams still open
after GATEWAY_SHUTDOWN_TIMEOUT_S end with an error event and are settled (their usage row
written).

uvicorn, on SIGTERM, stops accepting connections and waits for the open ones, up to its
--timeout-graceful-shutdown; then it cancels them. A cancelled stream looks like a client that
hung up: the client gets no explanation and the usage row says 499. A stream may last minutes,
so the gateway starts a shorter clock of its own at the signal and, when it runs out, aborts
each open stream's upstream response: the relay's ordinary error path then sends the client an
error event (code gateway_shutting_down) and settles. Set the server's graceful timeout above
ours (the Makefile and docker/entrypoint.sh do).

The listening socket: with --workers N, uvicorn's supervisor binds it and every worker inherits
it. A worker that stops closes only its own descriptor; the supervisor's keeps the socket
listening until the last worker is gone, so the kernel goes on completing handshakes that no
process will ever serve, and resets them at exit: a balancer that already sent a POST on such a
connection cannot retry it. So the signal handler shuts the listening socket down itself
(shutdown(2) acts on the socket, not on one descriptor): from then on a connection attempt is
refused, which a balancer can safely retry elsewhere since nothing was sent.

The server's signal handling is uvicorn's: it installs its handlers before the lifespan
startup, where this module chains its own in front of them (uvicorn's still run).
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading

from django.conf import settings

from gateway.proxy.streaming import end_open_streams

log = logging.getLogger("gateway.shutdown")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_drain: asyncio.TimerHandle | None = None
# Set by the signal handler, read by /readyz: a plain bool, written once, in the main thread.
_draining = False


def is_draining() -> bool:
    """Whether this process got its stop signal: it finishes what it has and takes nothing new."""
    return _draining


def drain_streams_on_signals(loop: asyncio.AbstractEventLoop) -> bool:
    """Chain the drain in front of the server's SIGTERM/SIGINT handlers. Returns whether it
    could: signals reach only the main thread, and only a server's own handler is chained
    (with none, the signal's default action is left alone)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = False
    for sig in _SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            global _draining
            _draining = True
            # Before uvicorn's handler, whatever happens here: it is what stops the server.
            with contextlib.suppress(Exception):
                stop_listening()
            # Runs between two bytecodes of the main thread: hand over to the event loop
            # (unless it is gone: a finished server in a test run, say).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_start_drain)
            previous(signum, frame)

        signal.signal(sig, handler)
        installed = True
    return installed


def _listening_sockets() -> list[socket.socket]:
    """This process's listening TCP sockets (as duplicates: closing one leaves the original).
    Linux lists descriptors in /proc/self/fd; elsewhere there is none to find, and the server's
    own close is all there is."""
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            try:
                fd = int(name)
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                sock = socket.socket(fileno=os.dup(fd))
            except (OSError, ValueError):
                continue
            try:
                listens = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                inet = sock.family in (socket.AF_INET, socket.AF_INET6)
            except OSError:
                listens = inet = False
            if listens and inet and sock.type == socket.SOCK_STREAM:
                found.append(sock)
            else:
                sock.close()
    return found


def stop_listening() -> int:
    """Shut down every listening socket of this process, for every process sharing it (the
    supervisor and the other workers of the same server too). Returns how many."""
    stopped = 0
    for sock in _listening_sockets():
        # Another worker, signalled at the same moment, may have shut it down first.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
            stopped += 1
        sock.close()
    return stopped


def _start_drain() -> None:
    global _drain
    if _drain is not None:
        return
    timeout = settings.GATEWAY_SHUTDOWN_TIMEOUT_S
    log.info("shutting down: not ready, not accepting; open streams end in %g s", timeout)
    _drain = asyncio.get_running_loop().call_later(timeout, _end_streams)


def _end_streams() -> None:
    ended = end_open_streams()
    if ended:
        log.warning("shutdown: ended %d open stream(s) with an error event", ended)
