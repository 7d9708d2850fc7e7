"""The routing table snapshot: built once, then refreshed in the background while in service."""

from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from routing.selectors import routing_table_cache
from tests.factories import DeploymentFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def _sync(factory, **kwargs):
    return await sync_to_async(factory)(**kwargs)


async def _create_deployment(**kwargs):
    return await _sync(DeploymentFactory, **kwargs)


async def test_first_request_builds_the_table_with_enabled_deployments_cheapest_first():
    provider = await _sync(ProviderFactory, name="p1")
    await _create_deployment(
        provider=provider,
        model_name="small",
        upstream_model="dear",
        input_cost_per_mtok="2",
        output_cost_per_mtok="2",
    )
    await _create_deployment(
        provider=provider,
        model_name="small",
        upstream_model="cheap",
        input_cost_per_mtok="0.1",
        output_cost_per_mtok="0.1",
    )
    await _create_deployment(
        provider=provider, model_name="small", upstream_model="off", enabled=False
    )

    table = await routing_table_cache.get()

    assert [r.upstream_model for r in table.candidates("chat", "small")] == ["cheap", "dear"]


async def test_a_table_past_half_its_ttl_is_served_while_a_background_rebuild_picks_up_changes():
    provider = await _sync(ProviderFactory, name="p1")
    await _create_deployment(provider=provider, model_name="small")
    first = await routing_table_cache.get()
    await _create_deployment(provider=provider, model_name="large")
    # Three quarters of the TTL old: due for a refresh, not yet expired.
    aged = replace(first, built_at=first.built_at - 0.75 * settings.GATEWAY_ROUTING_CACHE_TTL_S)
    routing_table_cache._table = aged

    served = await routing_table_cache.get()

    # No waiting on the database: the request got the table it had.
    assert served is aged
    assert served.model_names() == {"small"}
    await routing_table_cache._refresh
    assert (await routing_table_cache.get()).model_names() == {"small", "large"}
