"""API keys and tenants: how secrets are made and stored, and how the shared key cache is kept
honest when a key or its team changes."""

import base64
import hashlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from gateway.proxy.auth import authenticate, local_cache
from gateway.proxy.errors import AuthenticationFailed
from infra.state import get_state
from tenants.keycache import snapshot_name
from tenants.keys import KEY_PREFIX, hash_secret
from tenants.models import ApiKey, Team
from tenants.selectors import api_key_principal_get, effective_allowed_models
from tenants.services import api_key_issue, api_key_revoke, api_keys_mark_used

from .factories import TeamFactory, UserFactory


def _redis():
    return get_state().sync_client


def _cache_entry(key: ApiKey) -> bytes | None:
    return _redis().get(snapshot_name(key.key_hash))


def _seed_cache(key: ApiKey) -> None:
    # What the proxy leaves behind after a request with this key.
    _redis().set(snapshot_name(key.key_hash), b'{"cached": true}', ex=300)


def _authenticate(secret: str):
    request = RequestFactory().post("/v1/chat/completions", HTTP_AUTHORIZATION=f"Bearer {secret}")
    return async_to_sync(authenticate)(request)


# --- Secrets -----------------------------------------------------------------------------------


def test_issued_secret_has_gateway_prefix_and_at_least_128_random_bits(team):
    secret = api_key_issue(team=team, name="k").secret
    assert secret.startswith("sk-gw-")
    random_part = secret.removeprefix(KEY_PREFIX)
    raw = base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))
    assert len(raw) * 8 >= 128


def test_issued_secrets_never_repeat(team):
    secrets = {api_key_issue(team=team, name=f"k{i}").secret for i in range(200)}
    assert len(secrets) == 200


def test_database_row_holds_only_the_sha256_and_a_short_prefix(team):
    issued = api_key_issue(team=team, name="k")
    secret = issued.secret
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.prefix == secret[: len(KEY_PREFIX) + 6]
    assert stored.prefix.startswith(KEY_PREFIX)
    # No column of the raw row carries the secret (or its random part).
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_apikey WHERE id = %s", [stored.pk])
        row = cursor.fetchone()
    random_part = secret.removeprefix(KEY_PREFIX)
    assert not any(random_part in str(value) for value in row)


def test_issuing_with_project_of_another_team_is_refused(team, other_team):
    from .factories import ProjectFactory

    project = ProjectFactory(team=other_team)
    with pytest.raises(ValueError, match="another team"):
        api_key_issue(team=team, name="k", project=project)
    assert not ApiKey.objects.exists()


# --- Revocation and the shared cache ------------------------------------------------------------


def test_revoke_sets_revoked_at_and_drops_cache_entry_only_after_commit(
    team, django_capture_on_commit_callbacks
):
    key = api_key_issue(team=team, name="k").api_key
    _seed_cache(key)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        api_key_revoke(api_key=key)
        # Until the commit another reader could still load the old row and re-cache it, so
        # the entry is dropped only once the revocation is durable.
        assert _cache_entry(key) is not None
    assert callbacks
    assert _cache_entry(key) is None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


@pytest.mark.django_db(transaction=True)
def test_revoke_drops_cache_entry_once_committed():
    team = TeamFactory(allowed_models=["*"])
    key = api_key_issue(team=team, name="k").api_key
    _seed_cache(key)
    api_key_revoke(api_key=key)
    assert _cache_entry(key) is None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_revoking_twice_keeps_the_first_revocation_time(team, django_capture_on_commit_callbacks):
    key = api_key_issue(team=team, name="k").api_key
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=key)
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk))
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first


# Lookups run on the proxy's database threads, which see only committed rows.
@pytest.mark.django_db(transaction=True)
def test_revoked_key_is_refused_even_after_it_was_cached(team, django_capture_on_commit_callbacks):
    secret = api_key_issue(team=team, name="k").secret
    assert _authenticate(secret).team_slug == team.slug  # now cached in Redis
    key = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert _cache_entry(key) is not None
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=key)
    local_cache.clear()  # another process: only the shared cache stands between it and the DB
    with pytest.raises(AuthenticationFailed, match="revoked"):
        _authenticate(secret)


def test_editing_team_models_invalidates_every_key_of_that_team_only(
    team, other_team, django_capture_on_commit_callbacks
):
    keys = [api_key_issue(team=team, name=f"k{i}").api_key for i in range(3)]
    bystander = api_key_issue(team=other_team, name="other").api_key
    for key in [*keys, bystander]:
        _seed_cache(key)
    with django_capture_on_commit_callbacks(execute=True):
        team.allowed_models = ["small"]
        team.save()
    assert all(_cache_entry(key) is None for key in keys)
    assert _cache_entry(bystander) is not None


@pytest.mark.django_db(transaction=True)
def test_team_model_change_takes_effect_for_a_cached_key(team, django_capture_on_commit_callbacks):
    secret = api_key_issue(team=team, name="k").secret
    assert _authenticate(secret).may_use("large")
    with django_capture_on_commit_callbacks(execute=True):
        team.allowed_models = ["small"]
        team.save()
    local_cache.clear()
    principal = _authenticate(secret)
    assert principal.may_use("small")
    assert not principal.may_use("large")


def test_recording_last_use_does_not_invalidate_the_cache(team, django_capture_on_commit_callbacks):
    # Ingestion touches last_used_at constantly; that must not empty the cache each time.
    key = api_key_issue(team=team, name="k").api_key
    _seed_cache(key)
    with django_capture_on_commit_callbacks(execute=True):
        key.last_used_at = timezone.now()
        key.save(update_fields=["last_used_at"])
    assert _cache_entry(key) is not None


# --- Which models a key may call ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("team_models", "key_models", "expected"),
    [
        (["*"], [], None),  # "*" and no narrowing: every model
        (["*"], ["small"], {"small"}),  # a key narrows an open team
        ([], [], set()),  # a new team starts closed
        ([], ["small"], set()),  # a key cannot open a closed team
        (["small", "large"], [], {"small", "large"}),
        (["small", "large"], ["small"], {"small"}),
        (["small"], ["small", "large"], {"small"}),  # never widens
        (["small"], ["*"], {"small"}),  # "*" on a key means "as the team"
    ],
)
def test_effective_allowed_models(team_models, key_models, expected):
    team = Team(allowed_models=team_models)
    key = ApiKey(allowed_models=key_models)
    result = effective_allowed_models(team, key)
    assert result == (None if expected is None else frozenset(expected))


def test_principal_of_key_on_inactive_team_counts_as_revoked(team):
    secret = api_key_issue(team=team, name="k").secret
    Team.objects.filter(pk=team.pk).update(is_active=False)
    principal = api_key_principal_get(key_hash=hash_secret(secret))
    assert principal.revoked


def test_principal_carries_narrowed_models_and_expiry(team):
    issued = api_key_issue(team=team, name="k", allowed_models=["small"], expires_in_days=1)
    principal = api_key_principal_get(key_hash=hash_secret(issued.secret))
    assert principal.allowed_models == frozenset({"small"})
    assert principal.expires_at == issued.api_key.expires_at.timestamp()
    assert principal.key_prefix == issued.api_key.prefix


def test_active_excludes_revoked_and_expired_keys(team):
    live = api_key_issue(team=team, name="live").api_key
    revoked = api_key_issue(team=team, name="revoked").api_key
    api_key_revoke(api_key=revoked)
    expired = api_key_issue(team=team, name="expired").api_key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert list(ApiKey.objects.active()) == [live]


# --- last_used_at -------------------------------------------------------------------------------


def test_mark_used_moves_last_used_at_forward_only(team):
    key = api_key_issue(team=team, name="k").api_key
    earlier = timezone.now() - timedelta(hours=2)
    later = earlier + timedelta(hours=1)
    api_keys_mark_used(last_used={key.pk: later})
    api_keys_mark_used(last_used={key.pk: earlier})  # a late, older event
    assert ApiKey.objects.get(pk=key.pk).last_used_at == later
    newest = later + timedelta(minutes=5)
    api_keys_mark_used(last_used={key.pk: newest})
    assert ApiKey.objects.get(pk=key.pk).last_used_at == newest


# --- Tenant scoping -----------------------------------------------------------------------------


def test_for_user_returns_only_the_users_teams(team, other_team, lead, member, outsider):
    assert list(Team.objects.for_user(lead)) == [team]
    assert list(Team.objects.for_user(member)) == [team]
    assert list(Team.objects.for_user(outsider)) == [other_team]


def test_for_user_without_memberships_is_empty(team, other_team, member):
    assert not Team.objects.for_user(UserFactory(username="nobody")).exists()
