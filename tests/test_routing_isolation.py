"""The routing table survives bad rows and failed rebuilds, and says so.

A provider that cannot be routed to is left out (and reported in the log, /readyz and the
admin), never a failed build for everyone. A failed rebuild keeps the previous table, is retried
after a backoff, and shows in the table's age. A change is served within the TTL.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import DatabaseError, connection
from django.test import override_settings

from routing.models import Provider
from routing.selectors import RoutingTableUnavailable, routing_table_cache
from tests.factories import DeploymentFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

FOREIGN_SECRET = "sk-encrypted-under-a-key-this-gateway-does-not-have"


def _good_and_undecryptable() -> None:
    DeploymentFactory(provider=ProviderFactory(name="good"), model_name="works")
    bad = ProviderFactory(name="bad", kind=Provider.Kind.OPENAI)
    DeploymentFactory(provider=bad, model_name="broken")
    # A credential written under a key that is no longer in GATEWAY_ENCRYPTION_KEYS.
    token = Fernet(Fernet.generate_key()).encrypt(FOREIGN_SECRET.encode()).decode()
    Provider.objects.filter(pk=bad.pk).update(credentials_encrypted=token)


@sync_to_async
def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


@asynccontextmanager
async def _deployments_table_gone():
    """A real database failure for the build's query: its table renamed away, then back."""
    await _execute("ALTER TABLE routing_deployment RENAME TO routing_deployment_away")
    try:
        yield
    finally:
        await _execute("ALTER TABLE routing_deployment_away RENAME TO routing_deployment")


def _age(table, seconds: float):
    """The same table, as if built `seconds` ago."""
    aged = replace(table, built_at=table.built_at - seconds)
    routing_table_cache._table = aged
    return aged


# --- bad rows -----------------------------------------------------------------------------------


async def test_provider_whose_credential_cannot_be_decrypted_is_left_out_and_reported(caplog):
    await sync_to_async(_good_and_undecryptable)()

    with caplog.at_level(logging.WARNING, logger="routing.selectors"):
        table = await routing_table_cache.get()

    assert table.model_names() == {"works"}
    assert routing_table_cache.status()["skipped"] == [
        {"provider": "bad", "reason": "credential cannot be decrypted"}
    ]
    [line] = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "bad" in line and "credential cannot be decrypted" in line
    assert FOREIGN_SECRET not in caplog.text


async def test_provider_of_a_kind_this_version_does_not_know_is_left_out():
    def rows() -> None:
        DeploymentFactory(provider=ProviderFactory(name="ok"), model_name="a")
        gone = ProviderFactory(name="gone")
        DeploymentFactory(provider=gone, model_name="b")
        Provider.objects.filter(pk=gone.pk).update(kind="retired_kind")

    await sync_to_async(rows)()

    table = await routing_table_cache.get()

    assert table.model_names() == {"a"}
    [skipped] = routing_table_cache.status()["skipped"]
    assert skipped["provider"] == "gone"
    assert "unknown kind" in skipped["reason"]


async def test_a_left_out_provider_is_logged_when_it_changes_not_at_every_rebuild(caplog):
    await sync_to_async(_good_and_undecryptable)()
    with caplog.at_level(logging.WARNING, logger="routing.selectors"):
        first = await routing_table_cache.get()
        _age(first, settings.GATEWAY_ROUTING_CACHE_TTL_S * 2)
        second = await routing_table_cache.get()  # past the TTL: waits for a rebuild

    assert second is not first
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == 1


def test_readyz_reports_the_tables_age_and_what_it_leaves_out(client):
    _good_and_undecryptable()

    response = client.get("/readyz")

    assert response.status_code == 200
    routing = response.json()["routing"]
    assert routing["age_s"] >= 0
    assert routing["skipped"] == [{"provider": "bad", "reason": "credential cannot be decrypted"}]
    assert routing["failed_builds"] == 0


def test_admin_provider_list_says_why_a_provider_is_left_out(admin_client):
    _good_and_undecryptable()

    page = admin_client.get("/admin/routing/provider/").content.decode()

    assert "Left out of routing because" in page
    assert "credential cannot be decrypted" in page
    assert FOREIGN_SECRET not in page


# --- failed builds ------------------------------------------------------------------------------


async def test_a_failed_rebuild_keeps_the_table_and_is_retried_after_a_backoff(caplog):
    await sync_to_async(DeploymentFactory)(model_name="small")
    table = await routing_table_cache.get()
    expired = _age(table, settings.GATEWAY_ROUTING_CACHE_TTL_S * 2)

    async with _deployments_table_gone():
        with caplog.at_level(logging.WARNING, logger="routing.selectors"):
            served = await routing_table_cache.get()  # waits for the rebuild, which fails
        failed = routing_table_cache._refresh
        again = await routing_table_cache.get()  # within the backoff: no new attempt

        assert served is expired and again is expired
        assert routing_table_cache._refresh is failed
        status = routing_table_cache.status()
        assert status["failed_builds"] == 1
        assert status["last_error"] == "ProgrammingError"
        assert status["age_s"] >= settings.GATEWAY_ROUTING_CACHE_TTL_S * 2
        assert "routing table build failed" in caplog.text

    await asyncio.sleep(max(0.0, routing_table_cache._retry_at - time.monotonic()))
    rebuilt = await routing_table_cache.get()

    assert rebuilt is not expired
    assert rebuilt.model_names() == {"small"}
    assert routing_table_cache.status()["failed_builds"] == 0


async def test_with_no_table_a_failed_build_is_not_retried_by_every_request():
    await sync_to_async(DeploymentFactory)(model_name="small")
    async with _deployments_table_gone():
        with pytest.raises(DatabaseError):
            await routing_table_cache.get()
        # During the backoff the next request fails at once, without a query; the proxy turns
        # either into a 503.
        with pytest.raises(RoutingTableUnavailable):
            await routing_table_cache.get()


# --- freshness ----------------------------------------------------------------------------------


@override_settings(GATEWAY_ROUTING_CACHE_TTL_S=0.5)
async def test_a_change_is_served_once_the_ttl_has_passed():
    provider = await sync_to_async(ProviderFactory)(name="p1")
    await sync_to_async(DeploymentFactory)(provider=provider, model_name="small")
    assert (await routing_table_cache.get()).model_names() == {"small"}

    await sync_to_async(DeploymentFactory)(provider=provider, model_name="large")
    await asyncio.sleep(settings.GATEWAY_ROUTING_CACHE_TTL_S)

    # No background task awaited, no cache cleared: the documented bound alone.
    assert (await routing_table_cache.get()).model_names() == {"small", "large"}
