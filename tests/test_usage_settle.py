"""Where a request's usage event goes when the usage stream is not there: the database directly,
and (tests/e2e/test_dependency_outages.py) the local spool when the database is not there either."""

import socket

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from billing.ingest import ingest_usage_stream
from billing.models import UsageRecord
from gateway.proxy.context import RequestContext, deliver_spooled_usage
from infra import usage_event
from infra.state import get_state
from tenants.selectors import api_key_principal_get
from tenants.services import api_key_issue

from .factories import TeamFactory
from .helpers_usage import usage_event as make_event

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)"),
    # Usage is written on the proxy's own database threads, which see only committed rows.
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def api_key():
    return api_key_issue(team=TeamFactory(allowed_models=["*"]), name="k").api_key


@pytest.fixture
def stream_down(settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    settings.REDIS_URL = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    get_state.cache_clear()
    yield
    get_state.cache_clear()
    sock.close()


def _settled_context(api_key) -> RequestContext:
    ctx = RequestContext("chat.completions")
    ctx.principal = api_key_principal_get(key_hash=api_key.key_hash)
    ctx.requested_model = "small"
    async_to_sync(ctx.settle)()
    return ctx


def test_usage_is_written_to_the_database_when_the_stream_is_down(api_key, stream_down):
    ctx = _settled_context(api_key)

    [record] = UsageRecord.objects.all()
    assert record.request_id == ctx.request_id
    assert record.api_key_id == api_key.pk
    assert record.team_id == api_key.team_id


def test_usage_goes_to_the_stream_when_it_is_up(api_key):
    ctx = _settled_context(api_key)

    assert not UsageRecord.objects.exists()  # not written directly...
    assert ingest_usage_stream(consumer="t") == 1  # ...but waiting in the stream
    assert UsageRecord.objects.get().request_id == ctx.request_id


def test_a_request_settles_once_however_often_it_is_asked(api_key, stream_down):
    ctx = _settled_context(api_key)
    async_to_sync(ctx.settle)()
    assert UsageRecord.objects.filter(request_id=ctx.request_id).count() == 1


def test_replayed_events_reach_the_database_once_even_when_replayed_twice(api_key, stream_down):
    events = [make_event(api_key) for _ in range(3)]
    records = [usage_event.encode(e) for e in events]
    torn = records[1][: len(records[1]) // 2]  # a line cut short by a crash mid-write

    async_to_sync(deliver_spooled_usage)([records[0], torn, records[1], records[2]])
    async_to_sync(deliver_spooled_usage)(records)  # a round that failed half-way, replayed

    stored = sorted(UsageRecord.objects.values_list("request_id", flat=True))
    assert stored == sorted(e.request_id for e in events)


def test_replayed_events_go_to_the_stream_when_redis_is_back(api_key):
    event = make_event(api_key)
    async_to_sync(deliver_spooled_usage)([usage_event.encode(event)])
    assert ingest_usage_stream(consumer="t") == 1
    assert UsageRecord.objects.get().request_id == event.request_id
