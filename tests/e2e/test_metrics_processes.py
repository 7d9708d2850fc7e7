"""/metrics with several web processes, launched as production launches them: the preflight
(`python -m gateway.startup`) empties PROMETHEUS_MULTIPROC_DIR, then `uvicorn --workers 2`.
Whichever worker answers the scrape, the counters are the sum of every worker's."""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from policies.models import Policy
from tenants.services import api_key_issue
from tests.helpers_metrics import scrape
from tests.helpers_proc import (
    PYTHON,
    ROOT,
    base_env,
    free_port,
    start,
    stop,
    subprocess_database_url,
    wait_for,
)

from .support import MESSAGES, TEAM, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

WORKERS = 2
ROUNDS = 5  # rounds of concurrent traffic at most, until both workers have served some


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    logs = tmp_path_factory.mktemp("metrics-processes")
    directory = logs / "metrics"
    directory.mkdir()
    stale = directory / "counter_1.db"
    stale.write_bytes(b"a previous run's file, which must not be summed")
    keep = directory / "notes.txt"
    keep.write_text("not a metrics file: left alone")
    port = free_port()
    env = base_env(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        WEB_CONCURRENCY=str(WORKERS),
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        GATEWAY_METRICS_TOKEN=None,
        GATEWAY_SPOOL_DIR=str(logs / "spool"),
        GATEWAY_POLICY_CACHE_TTL_S="0.5",
        GATEWAY_ROUTING_CACHE_TTL_S="0.5",
        OTEL_EXPORTER_OTLP_ENDPOINT=None,
        GATEWAY_OTEL_ENABLED=None,
    )
    preflight = subprocess.run(
        [PYTHON, "-m", "gateway.startup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert preflight.returncode == 0, preflight.stderr
    assert not stale.exists()
    assert keep.exists()
    args = [PYTHON, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", str(WORKERS), "--no-proxy-headers"]
    proc = start(args, env=env, log_path=logs / "web.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (logs / "web.log").read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=90, what="the two-worker server")
    yield url, directory
    stop(proc)


def _post(url: str, key: str) -> int:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "chat-fast", "messages": MESSAGES},
        timeout=30,
    )
    return response.status_code


def _writers(directory) -> set[str]:
    """The processes that have written counters (prometheus_client's counter_<pid>.db)."""
    return {path.stem.split("_", 1)[1] for path in directory.glob("counter_*.db")}


def test_counters_sum_every_worker(server, gateway, upstream):
    url, directory = server
    limited = api_key_issue(team=gateway.team, name="limited")
    Policy.objects.create(api_key=limited.api_key, rpm=1)
    ok = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(ROUNDS):
            statuses = list(pool.map(lambda _: _post(url, gateway.key), range(16)))
            assert statuses == [200] * 16
            ok += 16
            if len(_writers(directory)) >= WORKERS:
                break
    assert len(_writers(directory)) == WORKERS  # both workers served, so both wrote
    # The workers serve the policy within their cache TTL (0.5 s); the second request is over.
    time.sleep(1.0)
    assert _post(url, limited.secret) == 200
    assert _post(url, limited.secret) == 429
    assert _post(url, "sk-gw-" + "y" * 40) == 401
    wait_for_usage_records(ok + 2)

    # Several scrapes, so that each worker is likely to answer one: all see the same totals.
    for _ in range(4):
        found = scrape(url)
        chat = {"endpoint": "chat.completions"}
        assert found.value("gateway_requests_total", status="200", **chat) == ok + 1
        assert found.value("gateway_requests_total", status="429") == 1
        assert found.value("gateway_limit_hits_total", team=TEAM) == 1
        assert found.value("gateway_auth_failures_total", reason="invalid_api_key") == 1
        assert found.value("gateway_request_duration_seconds_count", **chat) == ok + 2
        assert found.value("gateway_tokens_total", direction="input") == (
            (ok + 1) * upstream.prompt_tokens
        )
        assert found.value("gateway_breaker_state", state="closed") >= 1
