"""Revocation that holds, across two web processes (uvicorn subprocesses, as in production).

A revoked or expired key, a deactivated team or organization must be refused by every process
within GATEWAY_KEY_CACHE_TTL_S, however the change was made (service, `QuerySet.update()`),
when a lookup races with it, and when the invalidation could not reach Redis at first.

Everything talks to the shared Postgres and Redis through TCP proxies this module owns: the
database proxy can hold back one reply (the race), the Redis proxies can be cut (the outages).
The web processes use one Redis proxy, this test process (the "admin" making changes) another,
so a partition between them can be staged as well as a Redis outage for everyone.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from infra.state import get_state
from tenants import keycache
from tenants.keys import hash_secret
from tenants.models import ApiKey, Organization, Team
from tenants.services import api_key_revoke
from tests.helpers_net import TcpProxy, WebProcess, url_through
from tests.helpers_proc import subprocess_database_url, wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

# Small on purpose: each test waits for this bound. The shared snapshot TTL is far longer, so a
# refusal within the local TTL proves the invalidation, not an expiry.
LOCAL_TTL_S = 1
SHARED_TTL_S = 10
RETRY_S = 1.0
# Slack for a loaded machine on top of each documented bound.
SLACK_S = 3.0


@pytest.fixture(scope="module")
def proxies(django_db_setup):
    db = urlsplit(os.environ["DATABASE_URL"])
    redis = urlsplit(settings.REDIS_URL)
    started = {
        "db": TcpProxy(db.port or 5432, db.hostname).start(),
        "web_redis": TcpProxy(redis.port or 6379, redis.hostname).start(),
        "admin_redis": TcpProxy(redis.port or 6379, redis.hostname).start(),
    }
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture(scope="module")
def web(proxies, tmp_path_factory):
    logs = tmp_path_factory.mktemp("revocation")
    env = {
        "DATABASE_URL": url_through(subprocess_database_url(), proxies["db"]),
        "REDIS_URL": url_through(settings.REDIS_URL, proxies["web_redis"]),
        "GATEWAY_KEY_CACHE_TTL_S": str(LOCAL_TTL_S),
        "GATEWAY_SHARED_KEY_CACHE_TTL_S": str(SHARED_TTL_S),
        "GATEWAY_ROUTING_CACHE_TTL_S": "1",
        "WEB_CONCURRENCY": "1",  # uvicorn would fork that many workers per process
    }
    processes = [WebProcess(logs, **env) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(WebProcess.start, processes))
    yield processes
    for process in processes:
        process.stop()
        print(process.log.read_text()[-3000:])


@pytest.fixture
def admin_redis(proxies, settings):
    """This process (where changes are made) reaches Redis through its own proxy."""
    settings.REDIS_URL = url_through(settings.REDIS_URL, proxies["admin_redis"])
    settings.GATEWAY_KEY_INVALIDATION_RETRY_S = RETRY_S
    get_state.cache_clear()
    yield proxies["admin_redis"]
    proxies["admin_redis"].restore_if_cut()
    get_state.cache_clear()


def _statuses(web, key: str) -> list[int]:
    return [process.get("/v1/models", key).status_code for process in web]


def _served_everywhere(web, key: str) -> None:
    assert _statuses(web, key) == [200, 200]


def _refused_everywhere_within(web, key: str, bound_s: float) -> None:
    wait_for(
        lambda: _statuses(web, key) == [401, 401],
        timeout=bound_s + SLACK_S,
        what=f"both processes to refuse the key within {bound_s} s",
    )
    # And it stays refused: nothing puts the old snapshot back.
    assert _statuses(web, key) == [401, 401]


# --- Changes made through the ORM ---------------------------------------------------------------


def test_revoked_key_is_refused_by_every_process_within_the_local_ttl(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    api_key_revoke(api_key=gateway.api_key)
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_revocation_by_queryset_update_is_seen_as_well(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    ApiKey.objects.filter(pk=gateway.api_key.pk).update(revoked_at=timezone.now())
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_expiry_set_by_queryset_update_is_seen_as_well(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    past = timezone.now() - timedelta(seconds=1)
    ApiKey.objects.filter(team=gateway.team).update(expires_at=past)
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_deactivated_team_is_refused_everywhere(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    Team.objects.filter(pk=gateway.team.pk).update(is_active=False)
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_deactivated_organization_is_refused_everywhere(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    Organization.objects.filter(teams=gateway.team).update(is_active=False)
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_organization_deactivated_by_save_is_refused_everywhere(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    organization = gateway.team.organization
    organization.is_active = False
    organization.save()
    _refused_everywhere_within(web, gateway.key, LOCAL_TTL_S)


def test_change_behind_the_orms_back_is_seen_within_the_shared_ttl(gateway, web, admin_redis):
    _served_everywhere(web, gateway.key)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tenants_apikey SET revoked_at = now() WHERE id = %s", [gateway.api_key.pk]
        )
    # No signal, no queryset: only the snapshots' TTLs bound this one.
    _refused_everywhere_within(web, gateway.key, SHARED_TTL_S + LOCAL_TTL_S)


# --- A lookup racing with the revocation --------------------------------------------------------


def test_lookup_that_read_the_row_before_a_revoke_cannot_cache_it_after(
    gateway, web, proxies, admin_redis
):
    first, second = web
    secret = gateway.issue_key(name="race")  # never used: a lookup must go to the database
    key_hash = hash_secret(secret)
    database = proxies["db"]
    # The database's answer to the first process's lookup (it carries the key's hash) is held
    # back in the proxy: the row has been read, the lookup has not finished.
    database.hold_replies_containing(key_hash.encode())
    with ThreadPoolExecutor(1) as pool:
        racing = pool.submit(first.get, "/v1/models", secret, 20)
        assert database.held.wait(10), "the lookup never reached the database"
        api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash))
        database.release()
        response = racing.result(timeout=20)

    # The request began before the revocation and was served with what it read then...
    assert response.status_code == 200
    # ...but that row did not go back into the shared cache after the revocation.
    assert get_state().sync_client.get(keycache.snapshot_name(key_hash)) is None
    assert second.get("/v1/models", secret).status_code == 401
    _refused_everywhere_within(web, secret, LOCAL_TTL_S)


# --- Invalidations that could not reach Redis ---------------------------------------------------


def test_invalidation_lost_in_a_partition_is_delivered_when_redis_is_reachable_again(
    gateway, web, admin_redis
):
    _served_everywhere(web, gateway.key)  # snapshots in Redis
    admin_redis.cut()  # the web processes still reach Redis; this process does not
    api_key_revoke(api_key=gateway.api_key)
    assert len(keycache.pending) == 1  # the invalidation waits for Redis

    admin_redis.restore()
    _refused_everywhere_within(web, gateway.key, RETRY_S + LOCAL_TTL_S)
    assert len(keycache.pending) == 0


def test_key_revoked_while_redis_is_down_is_refused_soon_after_it_returns(
    gateway, web, proxies, admin_redis
):
    _served_everywhere(web, gateway.key)
    web_redis = proxies["web_redis"]
    web_redis.cut()
    admin_redis.cut()
    try:
        api_key_revoke(api_key=gateway.api_key)
        # While Redis is away a process serves what it still holds, for at most its local TTL,
        # then answers 503: never a 200 from a snapshot it cannot check.
        wait_for(
            lambda: _statuses(web, gateway.key) == [503, 503],
            timeout=LOCAL_TTL_S + SLACK_S,
            what="both processes to stop serving from memory",
        )
    finally:
        web_redis.restore()
        admin_redis.restore()
    # Redis comes back with the old snapshot in it; the retried invalidation removes it.
    _refused_everywhere_within(web, gateway.key, RETRY_S + LOCAL_TTL_S)
