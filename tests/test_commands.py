"""createapikey and seeddemo: what an operator types, and what it leaves behind."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from gateway.proxy.auth import authenticate
from routing.models import Deployment, Provider
from tenants.keys import hash_secret
from tenants.models import ApiKey, Team

from .factories import TeamFactory
from .helpers_proc import base_env, manage, subprocess_database_url

SECRET_RE = re.compile(r"sk-gw-[A-Za-z0-9_-]+")


def _createapikey(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _seeddemo() -> str:
    out = StringIO()
    call_command("seeddemo", "--base-url", "http://gw.test:9000", stdout=out)
    return out.getvalue()


# --- createapikey -------------------------------------------------------------------------------


# The proxy looks keys up on its own database threads, which see only committed rows.
@pytest.mark.django_db(transaction=True)
def test_createapikey_prints_only_the_secret_and_it_authenticates(team):
    stdout, stderr = _createapikey("--team", team.slug, "--name", "ci")
    lines = stdout.splitlines()
    assert len(lines) == 1
    secret = lines[0]
    assert stdout == secret + "\n"
    assert SECRET_RE.fullmatch(secret)
    stored = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert stored.team == team
    assert stored.name == "ci"
    assert stored.expires_at is None
    # The human-readable note goes to stderr and shows the prefix, never the secret.
    assert stored.prefix in stderr
    assert secret not in stderr
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert async_to_sync(authenticate)(request).key_id == stored.pk


def test_createapikey_unknown_team_is_a_command_error(db):
    with pytest.raises(CommandError, match="no team with slug 'nope'"):
        _createapikey("--team", "nope")
    assert not ApiKey.objects.exists()


def test_createapikey_expires_in_days_sets_expiry(team):
    before = timezone.now()
    stdout, _ = _createapikey("--team", team.slug, "--expires-in-days", "7")
    after = timezone.now()
    key = ApiKey.objects.get(key_hash=hash_secret(stdout.strip()))
    assert before + timedelta(days=7) <= key.expires_at <= after + timedelta(days=7)


def test_createapikey_refuses_non_positive_expiry(team):
    with pytest.raises(CommandError, match="expires_in_days must be positive"):
        _createapikey("--team", team.slug, "--expires-in-days", "0")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_createapikey_stdout_is_usable_in_shell_substitution():
    """KEY=$(manage.py createapikey ...): the real program's stdout is the secret alone, with
    any logging kept on stderr."""
    team = TeamFactory(slug="cli-team")
    env = base_env(DATABASE_URL=subprocess_database_url())
    result = manage("createapikey", "--team", team.slug, env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET_RE.fullmatch(result.stdout.rstrip("\n"))
    assert ApiKey.objects.filter(key_hash=hash_secret(result.stdout.strip()), team=team).exists()


# --- seeddemo -----------------------------------------------------------------------------------


def test_seeddemo_creates_demo_team_models_and_a_working_key(db):
    output = _seeddemo()
    secret = SECRET_RE.search(output).group(0)
    key = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert key.team.slug == "demo"
    assert key.team.allowed_models == ["*"]
    assert key.is_active
    assert Provider.objects.get(name="mock").kind == Provider.Kind.MOCK
    assert set(Deployment.objects.values_list("model_name", flat=True)) == {
        "mock-small",
        "mock-embed",
    }
    # The printed curl targets the requested base URL.
    assert "curl http://gw.test:9000/v1/chat/completions" in output


def test_seeddemo_second_run_keeps_config_and_revokes_previous_demo_key(db):
    first = SECRET_RE.search(_seeddemo()).group(0)
    config = [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
    ]
    second = SECRET_RE.search(_seeddemo()).group(0)
    assert first != second
    assert [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
    ] == config
    old = ApiKey.objects.get(key_hash=hash_secret(first))
    new = ApiKey.objects.get(key_hash=hash_secret(second))
    assert old.revoked_at is not None
    assert new.revoked_at is None
    assert list(ApiKey.objects.active().filter(team__slug="demo")) == [new]


def test_seeddemo_leaves_other_demo_team_keys_alone(db):
    _seeddemo()
    team = Team.objects.get(slug="demo")
    stdout, _ = _createapikey("--team", "demo", "--name", "someone else's")
    _seeddemo()
    assert ApiKey.objects.get(key_hash=hash_secret(stdout.strip()), team=team).is_active
