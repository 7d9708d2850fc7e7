"""Rotating SECRET_KEY: what the old key signed keeps validating while it is listed in
SECRET_KEY_FALLBACKS, and stops once it is removed."""

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import signing
from django.core.checks import run_checks
from django.test import override_settings

from .factories import UserFactory
from .helpers_proc import base_env, manage

OLD = "old-secret-key-Zq8vN3xR7tLp2WcY5hJ0aK4mD6"
NEW = "new-secret-key-Hb1uE9sG3fT7yQ2nV5kX8wM0rC"


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


def _logged_in_under_old_key(client, staff):
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        client.force_login(staff)
        assert client.get("/admin/").status_code == 200


def test_a_session_from_the_old_key_survives_while_it_is_a_fallback(client, staff):
    _logged_in_under_old_key(client, staff)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert client.get("/admin/").status_code == 200


def test_a_session_from_the_old_key_ends_when_the_fallback_is_removed(client, staff):
    _logged_in_under_old_key(client, staff)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_password_reset_link_from_the_old_key_validates_only_while_listed(staff):
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        token = PasswordResetTokenGenerator().make_token(staff)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert PasswordResetTokenGenerator().check_token(staff, token)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert not PasswordResetTokenGenerator().check_token(staff, token)


def test_a_signed_value_from_the_old_key_validates_only_while_listed():
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        signed = signing.dumps({"team": 7})
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert signing.loads(signed) == {"team": 7}
    with (
        override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]),
        pytest.raises(signing.BadSignature),
    ):
        signing.loads(signed)


def test_fallbacks_are_read_from_the_environment(tmp_path):
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        SQLITE_PATH=str(tmp_path / "gw.sqlite3"),
        SECRET_KEY_FALLBACKS=f"{OLD},{NEW}",
    )
    show = "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)"
    result = manage("shell", "-c", show, env=env)
    assert result.stdout.strip().splitlines()[-1] == str([OLD, NEW]), result.stderr


def test_a_weak_fallback_fails_the_production_check(settings):
    settings.GATEWAY_PRODUCTION = True
    settings.DEBUG = False
    settings.SECRET_KEY = NEW
    settings.SECRET_KEY_FALLBACKS = [OLD, "changeme"]
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert "gateway.E210" in ids
    settings.SECRET_KEY_FALLBACKS = [OLD]
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert "gateway.E210" not in ids
