"""How changes reach the shared key cache: which writes invalidate which keys, when, and what
happens when Redis is not there to hear it."""

import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from infra.state import get_state
from tenants import keycache
from tenants.models import ApiKey, Organization, Team
from tenants.services import api_key_issue, api_key_revoke

from .factories import OrganizationFactory, TeamFactory

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


def _redis():
    return get_state().sync_client


def _cached(key: ApiKey) -> None:
    _redis().set(keycache.snapshot_name(key.key_hash), b"{}", ex=300)


def _generation(key: ApiKey) -> int:
    return int(_redis().get(keycache.generation_name(key.key_hash)) or 0)


def _invalidated(key: ApiKey) -> bool:
    snapshot = _redis().get(keycache.snapshot_name(key.key_hash))
    return snapshot is None and _generation(key) > 0


def _key(team: Team, name: str = "k") -> ApiKey:
    return api_key_issue(team=team, name=name).api_key


# --- Which writes invalidate --------------------------------------------------------------------


def test_queryset_update_invalidates_the_keys_it_changed_only_after_commit(
    team, django_capture_on_commit_callbacks
):
    changed, untouched = _key(team, "changed"), _key(team, "untouched")
    _cached(changed), _cached(untouched)
    with django_capture_on_commit_callbacks(execute=True):
        ApiKey.objects.filter(pk=changed.pk).update(revoked_at=timezone.now())
        # Until the commit a lookup could still read the old row and cache it again.
        assert not _invalidated(changed)
    assert _invalidated(changed)
    assert not _invalidated(untouched)


def test_recording_last_use_by_update_invalidates_nothing(team, django_capture_on_commit_callbacks):
    key = _key(team)
    _cached(key)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    assert callbacks == []
    assert not _invalidated(key)


def test_team_update_invalidates_every_key_of_those_teams(
    team, other_team, django_capture_on_commit_callbacks
):
    keys = [_key(team, f"k{i}") for i in range(3)]
    bystander = _key(other_team)
    for key in [*keys, bystander]:
        _cached(key)
    with django_capture_on_commit_callbacks(execute=True):
        Team.objects.filter(pk=team.pk).update(is_active=False)
    assert all(_invalidated(key) for key in keys)
    assert not _invalidated(bystander)


def test_organization_changes_invalidate_the_keys_of_all_its_teams(
    django_capture_on_commit_callbacks, db
):
    acme, other = OrganizationFactory(slug="acme"), OrganizationFactory(slug="other")
    keys = [_key(TeamFactory(organization=acme)) for _ in range(2)]
    bystander = _key(TeamFactory(organization=other))
    for key in [*keys, bystander]:
        _cached(key)
    with django_capture_on_commit_callbacks(execute=True):
        acme.is_active = False
        acme.save()
    assert all(_invalidated(key) for key in keys)
    assert not _invalidated(bystander)
    for key in keys:
        _cached(key)
    with django_capture_on_commit_callbacks(execute=True):
        Organization.objects.filter(pk=acme.pk).update(is_active=True)
    assert [_generation(key) for key in keys] == [2, 2]


def test_deleting_a_key_invalidates_it(team, django_capture_on_commit_callbacks):
    key = _key(team)
    _cached(key)
    with django_capture_on_commit_callbacks(execute=True):
        ApiKey.objects.filter(pk=key.pk).delete()
    assert _invalidated(key)


def test_inactive_organization_makes_its_keys_count_as_revoked(team):
    from tenants.selectors import api_key_principal_get

    key = _key(team)
    assert not api_key_principal_get(key_hash=key.key_hash).revoked
    Organization.objects.filter(pk=team.organization_id).update(is_active=False)
    assert api_key_principal_get(key_hash=key.key_hash).revoked


# --- Invalidations Redis did not take -----------------------------------------------------------


@pytest.fixture
def redis_unreachable(settings):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    real = settings.REDIS_URL
    settings.GATEWAY_KEY_INVALIDATION_RETRY_S = 0.1

    def restore() -> None:
        settings.REDIS_URL = real
        get_state.cache_clear()

    def cut():
        settings.REDIS_URL = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
        get_state.cache_clear()
        return restore

    yield cut
    restore()
    sock.close()


@pytest.mark.django_db(transaction=True)
def test_invalidation_that_failed_is_retried_until_redis_takes_it(redis_unreachable):
    key = _key(TeamFactory())
    # The snapshot a web process left in Redis before the outage (written past the app's URL).
    redis.Redis.from_url(settings.REDIS_URL).set(
        keycache.snapshot_name(key.key_hash), b"{}", ex=300
    )
    restore = redis_unreachable()
    api_key_revoke(api_key=key)  # commits; the invalidation cannot reach Redis
    assert len(keycache.pending) == 1

    restore()
    deadline = time.monotonic() + 10
    while not _invalidated(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _invalidated(key)
    assert len(keycache.pending) == 0
