"""A Celery worker stopped in the middle of ingesting usage loses and duplicates nothing.

The worker runs as `make worker` runs it (prefork pool), on the test database and Redis, and is
stopped while billing.tasks.ingest_usage is part-way through a long stream:
- warm shutdown (SIGTERM): the worker finishes the batch it holds (it commits and acknowledges
  it) and exits; whatever it had not read stays in the stream for the next run;
- cold (SIGKILL): the batch it held is left pending in the consumer group, and the next run
  claims it after GATEWAY_USAGE_CLAIM_IDLE_MS; rows it had committed are skipped by request id.
Either way every event becomes exactly one row.
"""

import os
import signal

import pytest
from django.conf import settings

from billing.ingest import ingest_usage_stream
from billing.models import UsageRecord
from billing.tasks import ingest_usage
from infra import usage_event as schema
from tenants.services import api_key_issue

from .factories import TeamFactory
from .helpers_proc import PYTHON, base_env, start, stop, subprocess_database_url, wait_for
from .helpers_usage import redis, usage_event, usage_stream_state

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

EVENTS = 1500
BATCH = 10  # small batches: many commits, so a signal lands between two of them


@pytest.fixture
def worker_proc(transactional_db, tmp_path):
    env = base_env(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        GATEWAY_USAGE_BATCH_SIZE=str(BATCH),
    )
    # `make worker`'s command, with one pool process so that one task holds the stream.
    args = [PYTHON, "-m", "celery", "-A", "gateway", "worker", "-Q", "default,usage"]
    args += ["--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    log = tmp_path / "worker.log"
    proc = start(args, env=env, log_path=log)
    yield proc
    stop(proc)
    print(log.read_text()[-5000:])  # left for a failing test's report


def _fill_stream() -> set[str]:
    key = api_key_issue(team=TeamFactory(allowed_models=["*"]), name="worker").api_key
    events = [usage_event(key) for _ in range(EVENTS)]
    # As xadd() does, pipelined: the stream is full before the worker starts on it.
    pipe = redis().pipeline(transaction=False)
    for event in events:
        pipe.xadd(settings.GATEWAY_USAGE_STREAM, {"e": schema.encode(event)})
    pipe.execute()
    return {e.request_id for e in events}


def _mid_batch() -> bool:
    stored = UsageRecord.objects.count()
    return 0 < stored < EVENTS // 4


def _assert_every_event_is_one_row(expected: set[str]) -> None:
    stored = list(UsageRecord.objects.values_list("request_id", flat=True))
    assert len(stored) == len(expected)
    assert set(stored) == expected
    state = usage_stream_state()
    assert (state.length, state.pending) == (0, 0)


def test_warm_shutdown_finishes_the_batch_and_leaves_the_rest_queued(worker_proc):
    expected = _fill_stream()
    ingest_usage.delay()
    wait_for(_mid_batch, timeout=90, what="the worker to be part-way through the stream")

    worker_proc.send_signal(signal.SIGTERM)
    assert worker_proc.wait(timeout=60) == 0
    stored = UsageRecord.objects.count()
    assert stored > 0
    state = usage_stream_state()
    # Nothing left half-done: every event read was committed and acknowledged.
    assert state.pending == 0
    assert state.length == EVENTS - stored

    ingest_usage_stream(consumer="next-run")
    _assert_every_event_is_one_row(expected)


def test_killed_worker_batch_is_claimed_by_the_next_run(worker_proc, settings):
    settings.GATEWAY_USAGE_CLAIM_IDLE_MS = 0  # the crashed consumer's batch, claimable at once
    expected = _fill_stream()
    ingest_usage.delay()
    wait_for(_mid_batch, timeout=90, what="the worker to be part-way through the stream")

    stop_hard(worker_proc)
    ingest_usage_stream(consumer="next-run")
    _assert_every_event_is_one_row(expected)


def stop_hard(proc) -> None:
    """SIGKILL to the whole group: the pool process dies mid-batch, nothing runs after it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)
