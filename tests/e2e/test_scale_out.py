"""Scale-out, proven on this machine: nginx balancing two gateway instances (`make serve`, two
processes each), one `make worker`, one `make beat`, one Postgres database, one Redis
(tests/e2e/scale_support.py). Clients talk to nginx, as they would in production.

What must hold across instances: budgets and rate limits (one atomic reservation in Redis), a
revocation (within GATEWAY_KEY_CACHE_TTL_S), breakers (health state in Redis), and the usage
log (one row per request, written by the worker). Then one instance is stopped with SIGTERM
under traffic: its readiness fails at once and it refuses new connections, nginx sends
everything to the other, its streams drain or end with an error event, and every request is
accounted for.

The tests share one cluster and run in file order; the last one stops an instance.
"""

import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from billing.models import UsageRecord
from infra.state import get_state
from policies.models import Policy
from routing import health
from tenants.services import api_key_revoke
from tests.helpers_proc import subprocess_database_url, wait_for
from tests.helpers_usage import usage_stream_state

from .budget_support import ACTUAL_MICROS, OUTPUT_TOKENS, budget_counters, micros
from .conftest import GATEWAY_APPS, load_e2e_config
from .health_support import CHAT, chat_requests, load_health_config, wait_state
from .scale_support import Cluster, readiness
from .support import MESSAGES, Gateway

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)"),
    pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS),
]

TABLE_TTL_S = 0.5  # routing and policy snapshots: changes are served within this
KEY_CACHE_TTL_S = 5.0  # the documented revocation bound (GATEWAY_KEY_CACHE_TTL_S, default)
SHUTDOWN_TIMEOUT_S = 2.0  # streams still open this long after SIGTERM end with an error event
SLACK_S = 3.0  # on top of a documented bound, for a loaded 2-core machine
RPM = 20


@pytest.fixture(autouse=True)
def _fresh_state():
    """Replaces the suite's: Redis is not flushed between these tests. It holds the cluster's
    own state (the Celery broker's bindings, the usage stream's consumer group), which a flush
    would pull from under the running worker and beat. Each test has a new team, key and
    deployments, hence new counters, snapshots and breakers."""
    health.forget_cache()
    yield


@pytest.fixture(scope="module")
def cluster(django_db_setup, tmp_path_factory):
    env = {
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "GATEWAY_ROUTING_CACHE_TTL_S": str(TABLE_TTL_S),
        "GATEWAY_POLICY_CACHE_TTL_S": str(TABLE_TTL_S),
        "GATEWAY_KEY_CACHE_TTL_S": str(KEY_CACHE_TTL_S),
        # Each request reads the shared breaker state; one attempt per deployment, so the
        # breaker test counts outcomes exactly (as tests/e2e/test_health_processes.py).
        "GATEWAY_HEALTH_CACHE_S": "0",
        "GATEWAY_BREAKER_CONSECUTIVE_FAILURES": "3",
        "GATEWAY_BREAKER_MIN_OUTCOMES": "100",
        "GATEWAY_UPSTREAM_RETRIES": "0",
        "GATEWAY_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "USAGE_INGEST_INTERVAL_S": "0.5",
        # The revocation test polls with a refused key from one address: not a guessing attack.
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "10000",
        # Beat's other tasks would probe the fake upstreams and reconcile budgets mid-test.
        "GATEWAY_HEALTH_CHECK_INTERVAL_S": "3600",
        "GATEWAY_BUDGET_CHECK_INTERVAL_S": "3600",
    }
    # Emptied once, before anything runs on it: a previous run's counters and breakers would be
    # found again by this run's teams and deployments (the test database restarts their ids).
    get_state().sync_client.flushdb()
    found = Cluster(tmp_path_factory.mktemp("scale-out"), env)
    try:
        found.start()
        yield found
    finally:
        found.stop()
        for name in ("web-a.log", "web-b.log", "worker.log", "error.log"):
            print(f"--- {name}\n{found.log_tail(name)}")  # left for a failing test's report


def _tables_caught_up() -> None:
    """The instances serve a configuration change from the first request after their snapshot
    aged past its TTL: wait that long."""
    time.sleep(2 * TABLE_TTL_S)


@pytest.fixture
def scaled(cluster, upstream, closed_port) -> Gateway:
    """The e2e configuration, served by the cluster; clients go through nginx."""
    gateway = load_e2e_config(cluster.url, upstream, closed_port, key_name="scale")
    _tables_caught_up()
    return gateway


def _post(url: str, key: str, body: dict, timeout: float = 30) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, json=body, timeout=timeout)


def _served_by(response: httpx.Response) -> str:
    """The instance that answered: nginx lists every one it tried, the last one answered."""
    return response.headers["x-upstream-addr"].split(",")[-1].strip()


def _burst(gw: Gateway, count: int, body: dict) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: _post(gw.url, gw.key, body), range(count)))


def _addresses(cluster: Cluster) -> set[str]:
    return {f"127.0.0.1:{i.port}" for i in cluster.instances}


def wait_for_worker_rows(count: int, timeout_s: float = 30) -> list[UsageRecord]:
    """Exactly `count` usage rows, written by the cluster's worker (this process ingests
    nothing): poll until they are in and the stream is drained, then check nothing follows."""

    def drained() -> bool:
        state = usage_stream_state()
        return UsageRecord.objects.count() >= count and (state.length, state.pending) == (0, 0)

    wait_for(drained, timeout=timeout_s, what=f"the worker to ingest {count} usage rows")
    time.sleep(1.0)  # two beat intervals: an extra event would have been ingested by now
    records = list(UsageRecord.objects.all())
    assert len(records) == count, f"{len(records)} usage rows, expected {count}"
    return records


def _create_policy(**fields) -> None:
    Policy.objects.create(**fields)
    _tables_caught_up()


def test_budget_race_spread_over_both_instances(cluster, scaled, exact_usage):
    exact_usage.delay_s = 0.3  # all 50 are in flight together
    budget = Decimal(5 * ACTUAL_MICROS + 700) / 1_000_000  # five requests, not six
    _create_policy(team=scaled.team, monthly_budget_usd=budget)
    body = {"model": "chat-fast", "messages": MESSAGES, "max_tokens": OUTPUT_TOKENS}

    answers = _burst(scaled, 50, body)

    statuses = [a.status_code for a in answers]
    assert (statuses.count(200), statuses.count(429)) == (5, 45)
    assert {_served_by(a) for a in answers} == _addresses(cluster)
    records = wait_for_worker_rows(50)
    assert {r.request_id for r in records} == {a.headers["x-request-id"] for a in answers}
    spent, reserved = budget_counters("team", scaled.team.pk)
    assert reserved == 0
    assert spent == micros(records) == 5 * ACTUAL_MICROS


def test_rate_limit_holds_across_instances(cluster, scaled):
    _create_policy(team=scaled.team, rpm=RPM)
    body = {"model": "chat-fast", "messages": MESSAGES}
    started = time.monotonic()
    answers = _burst(scaled, 2 * RPM, body)
    elapsed = time.monotonic() - started

    statuses = [a.status_code for a in answers]
    # One minute's allowance between both instances (never one each), plus what refilled at
    # RPM per minute while the burst was being sent.
    assert RPM <= statuses.count(200) <= RPM + math.ceil(elapsed * RPM / 60)
    assert statuses.count(200) + statuses.count(429) == 2 * RPM
    assert {_served_by(a) for a in answers} == _addresses(cluster)
    wait_for_worker_rows(2 * RPM)


def _models_statuses(url: str, key: str, tries: int) -> list[int]:
    # New connections each: each may land on either process of the instance.
    headers = {"authorization": f"Bearer {key}"}
    return [
        httpx.get(f"{url}/v1/models", headers=headers, timeout=10).status_code for _ in range(tries)
    ]


def test_revocation_is_seen_by_both_instances_within_the_key_cache_ttl(cluster, scaled):
    urls = [i.url for i in cluster.instances] + [cluster.url]
    for url in urls:
        assert set(_models_statuses(url, scaled.key, 6)) == {200}  # cached everywhere

    api_key_revoke(api_key=scaled.api_key)
    revoked = time.monotonic()

    def refused_everywhere() -> bool:
        return all(set(_models_statuses(url, scaled.key, 4)) == {401} for url in urls)

    wait_for(refused_everywhere, timeout=KEY_CACHE_TTL_S + SLACK_S, what="both to refuse it")
    took = time.monotonic() - revoked
    print(f"revocation refused by both instances after {took:.2f} s")
    assert took <= KEY_CACHE_TTL_S + SLACK_S
    assert refused_everywhere()  # and nothing puts the old snapshot back


@pytest.fixture
def pair(cluster, upstream, flaky, closed_port) -> Gateway:
    found = load_health_config(upstream.base_url, flaky.base_url, closed_port)
    _tables_caught_up()
    return found


def _chat(url: str, key: str) -> httpx.Headers:
    answer = _post(url, key, {"model": "chat-pair", **CHAT}, timeout=15)
    assert answer.status_code == 200, answer.text
    return answer.headers


def test_breaker_opened_through_one_instance_is_open_for_the_other(cluster, pair, flaky):
    first, second = cluster.instances
    flaky.fail(500)
    for _ in range(3):
        assert _chat(first.url, pair.key)["x-gateway-attempts"] == "2"
    wait_state("flaky-chat", health.OPEN)
    tried = chat_requests(flaky, "flaky-chat")

    # The other instance (and nginx, whichever it picks) skips it without trying.
    for url in (second.url, second.url, cluster.url, cluster.url):
        skipped = _chat(url, pair.key)
        assert skipped["x-gateway-attempts"] == "1"
        assert skipped["x-gateway-deployment"] == "steady/steady-chat"
    assert chat_requests(flaky, "flaky-chat") == tried
    wait_for_worker_rows(7)


# --- Stopping one instance under traffic (the last test: it leaves one instance) -------------


@dataclass
class Outcome:
    """One client request: what came back, or the transport error that cut it."""

    started: float
    status: int | None = None
    request_id: str | None = None
    served_by: str | None = None
    ending: str | None = None  # streams: "done", the error event's code, or "cut"
    error: str | None = None


def _traffic(gw: Gateway, stop: threading.Event, outcomes: list[Outcome]) -> None:
    body = {"model": "chat-fast", "messages": MESSAGES}
    while not stop.is_set():
        outcome = Outcome(started=time.monotonic())
        try:
            answer = _post(gw.url, gw.key, body, timeout=30)
            outcome.status = answer.status_code
            outcome.request_id = answer.headers.get("x-request-id")
            outcome.served_by = _served_by(answer)
        except httpx.TransportError as exc:
            outcome.error = repr(exc)
        outcomes.append(outcome)


def _stream(gw: Gateway, first_chunk: threading.Barrier) -> Outcome:
    body = {"model": "chat-fast", "messages": MESSAGES, "stream": True}
    outcome = Outcome(started=time.monotonic())
    headers = {"authorization": f"Bearer {gw.key}"}
    try:
        with httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as answer:
            outcome.status = answer.status_code
            outcome.request_id = answer.headers.get("x-request-id")
            outcome.served_by = _served_by(answer)
            lines = answer.iter_lines()
            next(lines)
            first_chunk.wait(timeout=30)
            text = "\n".join(lines)
        if "data: [DONE]" in text:
            outcome.ending = "done"
        elif '"code":"gateway_shutting_down"' in text:
            outcome.ending = "gateway_shutting_down"
        else:
            outcome.ending = text[-200:]
    except httpx.TransportError as exc:
        outcome.ending, outcome.error = "cut", repr(exc)
    return outcome


STREAMS = 6


def test_sigterm_under_traffic_drains_one_instance_and_loses_no_request(cluster, scaled, upstream):
    stopping, staying = cluster.instances
    # A request takes a second: some are in flight when the stopping instance gets the signal.
    upstream.delay_s = 1.0
    upstream.chunk_delay_s = 0.5  # a stream lasts about 5 s: longer than the drain timeout
    stop = threading.Event()
    outcomes: list[Outcome] = []
    clients = [threading.Thread(target=_traffic, args=(scaled, stop, outcomes)) for _ in range(3)]
    first_chunk = threading.Barrier(STREAMS + 1)
    plain = {"model": "chat-fast", "messages": MESSAGES}
    with ThreadPoolExecutor(STREAMS + 1) as pool:
        try:
            # Opened before the other traffic starts, so nginx's round robin gives each
            # instance half of them.
            streams = [pool.submit(_stream, scaled, first_chunk) for _ in range(STREAMS)]
            first_chunk.wait(timeout=30)  # every stream is open and under way
            for client in clients:
                client.start()
            time.sleep(0.8)
            # One plain request certainly in flight on the stopping instance.
            in_flight = pool.submit(_post, stopping.url, scaled.key, plain)
            time.sleep(0.2)
            signalled = cluster.sigterm(stopping)

            # Readiness fails at once: the balancer's probe is refused (or told 503).
            wait_for(lambda: readiness(stopping.url) != 200, timeout=2, what="readiness to fail")
            not_ready_after = time.monotonic() - signalled
            # No new connection is accepted while the instance is still draining its streams.
            assert stopping.proc.poll() is None
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", stopping.port), timeout=2).close()

            time.sleep(SHUTDOWN_TIMEOUT_S + 1.0)  # traffic goes on, now through one instance
        finally:
            stop.set()
            for client in clients:
                if client.is_alive() or client.ident is not None:
                    client.join(timeout=60)
        ended = [s.result(timeout=60) for s in streams]
        drained = in_flight.result(timeout=60)
    exit_status = stopping.proc.wait(timeout=30)
    exited_after = time.monotonic() - signalled
    print(
        f"not ready {not_ready_after:.2f} s after SIGTERM; exited after {exited_after:.2f} s; "
        f"{len(outcomes)} requests, {STREAMS} streams"
    )

    # make passes the SIGTERM on to uvicorn, waits for it, then dies of the same signal.
    assert exit_status in (0, -15), cluster.log_tail("web-a.log")
    assert exited_after < SHUTDOWN_TIMEOUT_S + 10
    # The request in flight on the stopping instance was answered, after the signal.
    assert drained.status_code == 200, drained.text
    # Plain requests: none failed; the ones after the signal went to the other instance.
    assert [o for o in outcomes if o.status != 200] == []
    after = [o for o in outcomes if o.started > signalled + not_ready_after]
    assert after and {o.served_by for o in after} == {f"127.0.0.1:{staying.port}"}
    # nginx saw the refusal (passive check) and sent those requests to the other instance.
    assert "Connection refused" in cluster.log_tail("error.log", 20000)
    # Streams: the stopping instance's ended with the error event when the drain timed out,
    # the other's finished; none was cut without a word.
    endings = {(s.served_by, s.ending) for s in ended}
    assert endings == {
        (f"127.0.0.1:{stopping.port}", "gateway_shutting_down"),
        (f"127.0.0.1:{staying.port}", "done"),
    }, ended

    # Every request answered has exactly one usage row, the stopped instance's included: its
    # usage events were all on the stream before it exited.
    answered = [o.request_id for o in outcomes if o.status is not None]
    answered += [s.request_id for s in ended] + [drained.headers["x-request-id"]]
    records = {r.request_id: r for r in wait_for_worker_rows(len(answered))}
    assert set(records) == set(answered)
    for s in ended:
        record = records[s.request_id]
        if s.ending == "gateway_shutting_down":
            assert (record.status_code, record.error_type) == (503, "gateway_shutting_down")
        else:
            assert record.status_code == 200
