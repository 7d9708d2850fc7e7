"""Snapshot refreshes that find nothing changed build nothing (infra/snapshot.py's fingerprint),
and every table a build reads is in its fingerprint."""

import re
import time
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compliance.snapshot import compliance_table_build, compliance_table_cache
from infra import snapshot
from policies.snapshot import policy_table_build, policy_table_cache
from routing.models import Deployment
from routing.selectors import routing_table_build, routing_table_cache
from tests.factories import DeploymentFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

BUILDS = [
    (routing_table_cache, routing_table_build),
    (policy_table_cache, policy_table_build),
    (compliance_table_cache, compliance_table_build),
]


@pytest.mark.parametrize(("cache", "build"), BUILDS, ids=lambda c: getattr(c, "label", ""))
def test_every_table_a_build_reads_is_in_its_fingerprint(cache, build):
    # A table missing here would let a change to it go unseen until the next full rebuild.
    provider = ProviderFactory(name="p1")
    DeploymentFactory(provider=provider, model_name="small")
    with CaptureQueriesContext(connection) as queries:
        build()
    read = set()
    for query in queries.captured_queries:
        read |= set(re.findall(r'(?:FROM|JOIN) "([a-z_0-9]+)"', query["sql"]))
    assert read
    assert read <= cache.fingerprint.tables


def _aged(cache, seconds: float):
    """Put the snapshot in service back `seconds` in time, as the cache sees it."""
    table = cache.current
    cache._confirmed = (table, time.monotonic() - seconds)
    return table


async def _builds_during(coro) -> list[str]:
    seen = []
    snapshot.set_build_observer(lambda name, _seconds: seen.append(name))
    try:
        await coro
    finally:
        snapshot.set_build_observer(None)
    return seen


async def test_a_refresh_of_unchanged_tables_keeps_the_snapshot_and_builds_nothing(settings):
    provider = await sync_to_async(ProviderFactory)(name="p1")
    await sync_to_async(DeploymentFactory)(provider=provider, model_name="small")
    first = await routing_table_cache.get()
    _aged(routing_table_cache, settings.GATEWAY_ROUTING_CACHE_TTL_S * 2)  # expired

    builds = await _builds_during(routing_table_cache.get())

    assert builds == []
    assert await routing_table_cache.get() is first
    # Fresh as of the check: served without another one.
    assert routing_table_cache.status()["age_s"] < settings.GATEWAY_ROUTING_CACHE_TTL_S / 2


async def test_a_changed_row_is_seen_by_the_next_refresh(settings):
    provider = await sync_to_async(ProviderFactory)(name="p1")
    deployment = await sync_to_async(DeploymentFactory)(provider=provider, model_name="small")
    await routing_table_cache.get()
    # An update that sends no signal and touches no timestamp: the row's content changed.
    await Deployment.objects.filter(pk=deployment.pk).aupdate(model_name="renamed")
    _aged(routing_table_cache, settings.GATEWAY_ROUTING_CACHE_TTL_S * 2)

    builds = await _builds_during(routing_table_cache.get())

    assert builds == ["routing"]
    assert (await routing_table_cache.get()).model_names() == {"renamed"}


async def test_an_unchanged_snapshot_is_still_rebuilt_after_the_full_rebuild_interval(settings):
    provider = await sync_to_async(ProviderFactory)(name="p1")
    await sync_to_async(DeploymentFactory)(provider=provider, model_name="small")
    first = await routing_table_cache.get()
    old = replace(first, built_at=first.built_at - snapshot.FULL_REBUILD_S - 1)
    routing_table_cache._table = old
    routing_table_cache._fingerprint = (old, routing_table_cache._fingerprint[1])

    builds = await _builds_during(routing_table_cache.get())

    assert builds == ["routing"]
    assert routing_table_cache.current is not old


def test_a_setting_the_build_reads_is_part_of_the_fingerprint(settings):
    before = routing_table_cache.fingerprint()
    settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S = 1.25
    assert routing_table_cache.fingerprint() != before
