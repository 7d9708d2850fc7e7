"""SIGTERM with streams open: after GATEWAY_SHUTDOWN_TIMEOUT_S they end with an error event and
are settled, well before the server's own graceful timeout would cancel them silently.

The gateway runs as `make serve` runs it, a real uvicorn process, against this test run's
database and Redis; the fake upstream drips a stream far slower than the shutdown timeout.
"""

import signal

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

from .support import MESSAGES, wait_for_usage_record

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


@pytest.fixture
def served(gateway, tmp_path):
    """The gateway in its own uvicorn process (configuration and key from `gateway`)."""
    port = free_port()
    env = base_env(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        GATEWAY_SHUTDOWN_TIMEOUT_S=SHUTDOWN_TIMEOUT_S,
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
        SERVER_GRACE_S,
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
