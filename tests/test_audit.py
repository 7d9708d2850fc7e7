"""The audit log outside the admin: commands record as "cli", the middleware records who and
from where for the people-facing paths, secrets never reach a row, and rows outlive what they
describe."""

import getpass
import io
from io import StringIO

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory

from audit.context import audit_context, current
from audit.masking import MASK, diff, is_secret
from audit.middleware import AuditContextMiddleware
from audit.models import AuditEvent
from audit.services import audit_record
from policies.models import Policy
from routing.models import Deployment, Provider
from tenants.keys import hash_secret
from tenants.models import ApiKey, Team
from tenants.services import api_key_issue

from .factories import UserFactory
from .helpers_audit import events_for
from .helpers_config import MINIMAL_CONFIG, run_loadconfig
from .helpers_proc import base_env, manage, subprocess_database_url

UPSTREAM_KEY = "sk-upstream-example-0123456789"

# --- Commands ----------------------------------------------------------------------------------


def test_loadconfig_changes_are_audited_as_cli(db, tmp_path, monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", UPSTREAM_KEY)
    run_loadconfig(tmp_path, MINIMAL_CONFIG)
    provider = Provider.objects.get(name="openai-eu")
    team = Team.objects.get(slug="search")
    deployment = Deployment.objects.get(model_name="small")
    for obj in (provider, team, deployment):
        (created,) = events_for(obj, action="create")
        assert created.source == "cli"
        assert created.actor_id is None
    (provider_row,) = events_for(provider, action="create")
    assert provider_row.changes["api_base"] == [None, "https://eu.api.openai.com/v1"]
    # The credential was set on the new row: recorded as set, never its value.
    credential = [r for r in events_for(provider) if "credentials_encrypted" in r.changes]
    assert credential and all(
        r.changes["credentials_encrypted"][1] in (MASK, "*** (changed)") for r in credential
    )
    assert UPSTREAM_KEY not in str([r.changes for r in AuditEvent.objects.all()])
    # A second run changes nothing, and records nothing.
    count = AuditEvent.objects.count()
    run_loadconfig(tmp_path, MINIMAL_CONFIG)
    assert AuditEvent.objects.count() == count
    # An edit is recorded with its diff.
    run_loadconfig(
        tmp_path, MINIMAL_CONFIG.replace("context_window: 128000", "context_window: 64000")
    )
    (update,) = events_for(deployment, action="update")
    assert update.changes == {"context_window": [128000, 64000]}
    assert update.source == "cli"


def test_createapikey_is_audited_as_cli_with_the_os_user(team):
    out = StringIO()
    call_command("createapikey", "--team", team.slug, "--rpm", "5", stdout=out, stderr=StringIO())
    key = ApiKey.objects.get(key_hash=hash_secret(out.getvalue().strip()))
    (created,) = events_for(key, action="create")
    assert created.source == "cli"
    assert created.actor_repr == f"{getpass.getuser()} (os user)"
    assert created.team_id == team.pk
    assert created.changes["key_hash"] == [None, MASK]
    policy = Policy.objects.get(api_key=key)
    (limits,) = events_for(policy, action="create")
    assert limits.source == "cli" and limits.changes["rpm"] == [None, 5]


def test_rotateapikey_command_rotates_and_is_audited(team):
    issued = api_key_issue(team=team, name="svc")
    out = StringIO()
    call_command(
        "rotateapikey",
        issued.api_key.prefix,
        "--grace-seconds",
        "60",
        stdout=out,
        stderr=StringIO(),
    )
    new = ApiKey.objects.get(key_hash=hash_secret(out.getvalue().strip()))
    assert new.name == "svc" and new.pk != issued.api_key.pk
    (rotate,) = events_for(issued.api_key, action="rotate")
    assert rotate.source == "cli"
    assert rotate.changes["replaced_by"] == [None, str(new)]


@pytest.mark.django_db(transaction=True)
def test_manage_py_runs_every_command_as_cli():
    """The real program: a command without AuditedCommand (seeddemo) is still "cli"."""
    env = base_env(DATABASE_URL=subprocess_database_url())
    result = manage("seeddemo", "--base-url", "http://gw.test:9000", env=env)
    assert result.returncode == 0, result.stderr
    demo = Team.objects.get(slug="demo")
    (created,) = events_for(demo, action="create")
    assert created.source == "cli"


# --- The middleware ----------------------------------------------------------------------------


def _through_middleware(request, user=None):
    """The request passes the middleware to a view that changes something."""
    if user is not None:
        request.user = user

    def view(request):
        seen = current()
        audit_record(action="probe", object_type="test.thing", object_id="1")
        return HttpResponse(seen.source or "")

    return AuditContextMiddleware(view)(request)


@pytest.mark.parametrize(
    ("path", "source"),
    [("/admin/tenants/team/", "admin"), ("/portal/keys/", "portal"), ("/api/v1/keys/", "api")],
)
def test_middleware_records_source_actor_and_ip(db, path, source):
    user = UserFactory(username="alice")
    request = RequestFactory().post(path, REMOTE_ADDR="10.1.2.3", HTTP_X_REQUEST_ID="req-42")
    assert _through_middleware(request, user).content.decode() == source
    event = AuditEvent.objects.get(action="probe")
    assert (event.source, event.ip, event.actor_id, event.actor_repr) == (
        source,
        "10.1.2.3",
        user.pk,
        "alice",
    )
    assert event.request_id == "req-42"
    # Outside the request, the context is back to its default.
    assert current().source == "system" and current().request is None


def _asgi_request(path: str, peer: str, forwarded_for: str) -> ASGIRequest:
    """A request as the ASGI server hands it over: the peer in the scope, not in META."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
        "client": (peer, 40000),
    }
    return ASGIRequest(scope, io.BytesIO(b""))


def test_middleware_believes_forwarded_for_only_from_a_trusted_proxy(db, settings):
    settings.GATEWAY_TRUSTED_PROXIES = []
    _through_middleware(_asgi_request("/admin/x/", "10.9.9.9", "1.2.3.4"))
    settings.GATEWAY_TRUSTED_PROXIES = ["10.9.9.9"]
    _through_middleware(_asgi_request("/portal/x/", "10.9.9.9", "5.6.7.8"))
    assert list(AuditEvent.objects.order_by("id").values_list("ip", flat=True)) == [
        "10.9.9.9",
        "5.6.7.8",
    ]


def test_actor_is_read_when_the_row_is_written(db):
    """An API token is authenticated by the view, after the middleware ran: its user counts."""
    from django.contrib.auth.models import AnonymousUser

    token_user = UserFactory(username="token-holder")
    request = RequestFactory().post("/api/v1/keys/")
    request.user = AnonymousUser()

    def view(request):
        request.user = token_user  # what DRF's authentication does
        audit_record(action="probe", object_type="test.thing", object_id="1")
        return HttpResponse()

    AuditContextMiddleware(view)(request)
    assert AuditEvent.objects.get(action="probe").actor_id == token_user.pk


def test_other_paths_are_left_alone(db):
    request = RequestFactory().get("/healthz", REMOTE_ADDR="10.1.2.3")
    assert _through_middleware(request).content.decode() == "system"
    assert AuditEvent.objects.get(action="probe").ip is None


# --- Masking and survival ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("key_hash", True),
        ("credentials_encrypted", True),
        ("alert_webhook_encrypted", True),
        ("token_hash", True),
        ("client_secret", True),
        ("password", True),
        ("max_tokens", False),
        ("max_output_tokens", False),
        ("prefix", False),
        ("name", False),
    ],
)
def test_which_fields_are_secret(name, secret):
    assert is_secret(name) is secret


def test_diff_masks_secrets_and_says_when_they_change():
    before = {"key_hash": "a" * 64, "name": "x"}
    after = {"key_hash": "b" * 64, "name": "y"}
    assert diff(before, after) == {
        "key_hash": ["***", "*** (changed)"],
        "name": ["x", "y"],
    }
    assert diff(before, {"key_hash": "", "name": "x"}) == {"key_hash": ["***", ""]}


def test_explicit_changes_are_masked_too(db):
    event = audit_record(
        action="custom",
        object_type="x.y",
        object_id=1,
        changes={"password": ["old-pw", "new-pw"], "note": "hello"},
    )
    assert event.changes == {"password": ["***", "*** (changed)"], "note": "hello"}


def test_service_actor_overrides_the_context(db, team):
    lead = UserFactory(username="lead-x")
    someone = UserFactory(username="someone")
    with audit_context(actor=someone, source="portal", ip="192.0.2.1"):
        key = api_key_issue(team=team, name="k", actor=lead).api_key
        other = api_key_issue(team=team, name="k2").api_key
    (created,) = events_for(key, action="create")
    assert (created.actor_id, created.source, created.ip) == (lead.pk, "portal", "192.0.2.1")
    assert events_for(other, action="create")[0].actor_id == someone.pk


def test_rows_have_no_database_links_to_what_they_describe(db):
    fields = {f.name: f for f in AuditEvent._meta.get_fields()}
    assert fields["actor"].db_constraint is False
    assert not any(f.is_relation and f.name != "actor" for f in AuditEvent._meta.concrete_fields)
