"""Authentication of the management API: personal access tokens (hashed, shown once, scoped,
expiring) and the session (with CSRF)."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from api.models import PersonalAccessToken
from api.tokens import hash_token
from audit.models import AuditEvent
from tenants.models import ApiKey

from .factories import MembershipFactory, TeamFactory, UserFactory
from .helpers_api import TokenClient, client_for, error_of, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    user = UserFactory(username="alice")
    user.set_password("pw-alice-123")
    user.save()
    MembershipFactory(team=TeamFactory(slug="search"), user=user, role="lead")
    return user


def _session(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_a_token_is_created_from_the_session_shown_once_and_stored_hashed(alice):
    session = _session(alice)
    created = session.post(
        "/api/v1/tokens/",
        {"name": "ci", "scopes": ["read", "keys"], "expires_in_days": 30},
        content_type="application/json",
    )
    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert token.startswith("gwp_") and body["prefix"] == token[:12]
    row = PersonalAccessToken.objects.get(pk=body["id"])
    assert row.token_hash == hash_token(token) and row.scopes == ["read", "keys"]
    # Not stored in clear anywhere in the row, and never shown again.
    assert token not in json.dumps(list(PersonalAccessToken.objects.values()), default=str)
    for path in ("/api/v1/tokens/", f"/api/v1/tokens/{row.pk}/"):
        assert token not in session.get(path).content.decode()
    # It works, as alice.
    me = TokenClient(token).get("/api/v1/me/").json()
    assert me["username"] == "alice" and me["token"]["scopes"] == ["read", "keys"]
    # The audit log has the creation, with no token or hash in it.
    events = AuditEvent.objects.filter(object_type="api.personalaccesstoken")
    assert events.exists()
    assert token not in json.dumps(list(events.values()), default=str)
    assert row.token_hash not in json.dumps(list(events.values()), default=str)


def test_a_token_cannot_create_tokens(alice):
    client = client_for(alice)
    response = client.post(
        "/api/v1/tokens/", {"name": "x", "scopes": ["read"], "expires_in_days": 1}
    )
    assert response.status_code == 403
    assert PersonalAccessToken.objects.count() == 1  # only the client's own


@pytest.mark.parametrize("days", [0, 366, None])
def test_a_token_must_expire_within_a_year(alice, days):
    body = {"name": "ci", "scopes": ["read"]}
    if days is not None:
        body["expires_in_days"] = days
    response = _session(alice).post("/api/v1/tokens/", body, content_type="application/json")
    assert response.status_code == 400
    assert "expires_in_days" in error_of(response)["fields"]


def test_unknown_scopes_are_refused(alice):
    response = _session(alice).post(
        "/api/v1/tokens/",
        {"name": "ci", "scopes": ["read", "root"], "expires_in_days": 1},
        content_type="application/json",
    )
    assert response.status_code == 400 and "scopes" in error_of(response)["fields"]


def test_an_expired_token_is_401(alice):
    token = token_for(alice)
    PersonalAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = TokenClient(token).get("/api/v1/teams/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "authentication_failed"


def test_a_revoked_token_is_401(alice):
    token = token_for(alice)
    session = _session(alice)
    row = PersonalAccessToken.objects.get()
    assert session.delete(f"/api/v1/tokens/{row.pk}/").status_code == 200
    assert TokenClient(token).get("/api/v1/teams/").status_code == 401


@pytest.mark.parametrize("header", ["Bearer gwp_nope", "Bearer sk-gw-x", "Bearer", "Token abc"])
def test_bad_credentials_are_401(alice, header):
    response = Client().get("/api/v1/teams/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_no_credentials_are_401():
    response = Client().get("/api/v1/teams/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_an_inactive_users_token_is_401(alice):
    token = token_for(alice)
    alice.is_active = False
    alice.save()
    assert TokenClient(token).get("/api/v1/teams/").status_code == 401


def test_a_token_is_limited_to_its_scopes(alice):
    reader = client_for(alice, scopes=["read"])
    assert reader.get("/api/v1/teams/search/keys/").status_code == 200
    refused = reader.post("/api/v1/teams/search/keys/", {"name": "x"})
    assert refused.status_code == 403 and "'keys' scope" in error_of(refused)["message"]
    assert not ApiKey.objects.exists()
    keys_only = client_for(alice, scopes=["keys"])
    assert keys_only.get("/api/v1/teams/").status_code == 403  # no read scope
    assert keys_only.post("/api/v1/teams/search/keys/", {"name": "x"}).status_code == 201
    UserFactory(username="bob")
    assert (
        keys_only.post("/api/v1/teams/search/members/", {"username": "bob"}).status_code == 403
    )  # members need "write"
    writer = client_for(alice, scopes=["write"])
    assert writer.post("/api/v1/teams/search/members/", {"username": "bob"}).status_code == 201


def test_the_session_needs_csrf_for_unsafe_methods(alice):
    session = _session(alice, csrf=True)
    assert session.get("/api/v1/teams/").status_code == 200
    refused = session.post(
        "/api/v1/teams/search/keys/", {"name": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403 and "CSRF" in error_of(refused)["message"]
    session.get("/admin/login/")  # sets the csrftoken cookie
    csrf = session.cookies["csrftoken"].value
    done = session.post(
        "/api/v1/teams/search/keys/",
        {"name": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert done.status_code == 201


def test_last_used_is_recorded(alice):
    token = token_for(alice)
    TokenClient(token).get("/api/v1/me/")
    assert PersonalAccessToken.objects.get().last_used_at is not None


def test_createtoken_prints_the_token_once(alice):
    out, err = StringIO(), StringIO()
    call_command("createtoken", "--user", "alice", "--scopes", "read,keys", stdout=out, stderr=err)
    token = out.getvalue().strip()
    row = PersonalAccessToken.objects.get()
    assert row.token_hash == hash_token(token) and row.scopes == ["read", "keys"]
    assert token not in err.getvalue() and row.prefix in err.getvalue()
    assert TokenClient(token).get("/api/v1/teams/").status_code == 200
    with pytest.raises(CommandError, match="expires_in_days"):
        call_command("createtoken", "--user", "alice", "--expires-in-days", "400")
    with pytest.raises(CommandError, match="no active user"):
        call_command("createtoken", "--user", "nobody")
