"""SIGTERM with streams open: after GATEWAY_SHUTDOWN_TIMEOUT_S they end with an error event and
are settled, well before the server's own graceful timeout would cancel them silently.

The gateway runs as `make serve` runs it, a real uvicorn process, against this test run's
database and Redis; the fake upstream drips a stream far slower than the shutdown timeout.
"""

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from tests.helpers_proc import (
    PYTHON,
    base_env,
    free_port,
    start,
    stop,
    subprocess_database_url,
    wait_for,
)

from .support import MESSAGES, wait_for_usage_record, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

SHUTDOWN_TIMEOUT_S = "1"
# uvicorn's own limit, far above ours: if the gateway did not end the stream, uvicorn would
# wait for it to finish normally (about 8 s here) and the client would see [DONE].
SERVER_GRACE_S = "30"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _serve(tmp_path, *, shutdown_timeout_s: str, server_grace_s: str):
    """The gateway in its own uvicorn process (configuration and key from `gateway`)."""
    port = free_port()
    env = base_env(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        GATEWAY_SHUTDOWN_TIMEOUT_S=shutdown_timeout_s,
    )
    args = [
        PYTHON,
        "-m",
        "uvicorn",
        "gateway.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        server_grace_s,
    ]
    log = tmp_path / "gateway.log"
    proc = start(args, env=env, log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _answers(url), timeout=60, what="gateway")
        assert proc.poll() is None, log.read_text()
        yield proc, url
    finally:
        stop(proc)
        print(log.read_text()[-5000:])  # left for a failing test's report


@pytest.fixture
def served(gateway, tmp_path):
    yield from _serve(
        tmp_path, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S, server_grace_s=SERVER_GRACE_S
    )


@pytest.fixture
def served_short_grace(gateway, tmp_path):
    """The server's own graceful timeout shorter than the request: uvicorn cancels it."""
    yield from _serve(tmp_path, shutdown_timeout_s="30", server_grace_s="1")


def test_sigterm_ends_open_streams_with_an_error_event_and_settles_them(gateway, upstream, served):
    proc, url = served
    upstream.chunk_delay_s = 1.0  # nine events: about 8 s
    body = {"model": "chat-fast", "messages": MESSAGES, "stream": True}

    with (
        httpx.Client(base_url=url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as resp,
    ):
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        lines = resp.iter_lines()
        first = next(lines)
        proc.send_signal(signal.SIGTERM)
        rest = list(lines)

    assert first.startswith("data: {")
    text = "\n".join(rest)
    assert '"code":"gateway_shutting_down"' in text
    assert "[DONE]" not in text
    # uvicorn re-raises the signal it handled once it is done: a clean exit, by SIGTERM.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    record = wait_for_usage_record(request_id)
    assert (record.status_code, record.error_type) == (503, "gateway_shutting_down")
    assert record.stream is True
    assert upstream.disconnects == 1  # the upstream stream was let go, not left dripping


def test_request_cancelled_at_the_servers_graceful_timeout_is_still_logged(
    gateway, upstream, served_short_grace
):
    proc, url = served_short_grace
    upstream.delay_s = 10.0  # far beyond the server's 1 s of grace
    body = {"model": "chat-fast", "messages": MESSAGES}
    with httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        sent = pool.submit(_post_or_error, http, body, gateway.auth())
        wait_for(lambda: upstream.received("/v1/chat/completions"), timeout=10, what="upstream")
        proc.send_signal(signal.SIGTERM)
        assert isinstance(sent.result(timeout=30), httpx.TransportError)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    # The client got nothing (the server cancelled it), but the gateway logged the request
    # before its event loop ended: the settlement the cancellation started was waited for.
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.error_type) == (499, "client_disconnected")


def _post_or_error(http: httpx.Client, body: dict, headers: dict):
    try:
        return http.post("/v1/chat/completions", json=body, headers=headers)
    except httpx.TransportError as exc:
        return exc
