"""Every change made in the admin leaves an audit row saying who, from where, and what changed
(secrets masked); the audit log itself is read-only there, searchable and exportable."""

import csv
import io

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse

from audit.masking import MASK, MASK_CHANGED
from audit.models import AuditEvent
from compliance.models import DataProcessingAgreement
from policies.models import Policy
from routing.models import Deployment, Provider
from tenants.models import ApiKey, Membership, Team
from tenants.services import api_key_issue

from .factories import DeploymentFactory, MembershipFactory, ProviderFactory, UserFactory
from .helpers_audit import admin_change, events_for

UPSTREAM_SECRET = "sk-upstream-audited-credential-77"
WEBHOOK = "https://hooks.example.com/services/T000/B000/very-secret-path"


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _form_id(model) -> str:
    return f"{model._meta.model_name}_form"


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def client_as_admin(client, admin_user):
    client.force_login(admin_user)
    return client


def _the_update(obj, action="update") -> AuditEvent:
    rows = events_for(obj, action=action)
    assert len(rows) == 1, [(r.action, r.changes) for r in events_for(obj)]
    return rows[0]


def _assert_from_admin(event: AuditEvent, user) -> None:
    assert event.source == "admin"
    assert event.actor_id == user.pk and event.actor_repr == user.username
    assert event.ip == "127.0.0.1"
    assert event.request_id


def test_key_edit_in_admin_is_audited_without_its_hash(client_as_admin, admin_user, team):
    issued = api_key_issue(team=team, name="before")
    key = issued.api_key
    url = _url(ApiKey, "change", key.pk)
    response = admin_change(client_as_admin, url, _form_id(ApiKey), name="after")
    assert response.status_code == 302
    event = _the_update(key)
    _assert_from_admin(event, admin_user)
    assert event.changes == {"name": ["before", "after"]}
    assert event.team_id == team.pk
    assert event.object_repr == str(ApiKey.objects.get(pk=key.pk))
    created = events_for(key, action="create")[0]
    assert created.changes["key_hash"] == [None, MASK]
    assert key.key_hash not in str(created.changes)


def test_revoke_action_in_admin_is_audited_as_revoke(client_as_admin, admin_user, team):
    key = api_key_issue(team=team, name="k").api_key
    response = client_as_admin.post(
        _url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    event = _the_update(key, "revoke")
    _assert_from_admin(event, admin_user)
    assert list(event.changes) == ["revoked_at"]


def test_team_edit_in_admin_is_audited(client_as_admin, admin_user, team):
    url = _url(Team, "change", team.pk)
    response = admin_change(
        client_as_admin, url, _form_id(Team), name="Search Team", cost_center="CC-9"
    )
    assert response.status_code == 302
    event = _the_update(team)
    _assert_from_admin(event, admin_user)
    assert event.changes == {
        "name": [team.name, "Search Team"],
        "cost_center": ["", "CC-9"],
    }
    assert event.team_id == team.pk


def test_membership_edit_in_admin_is_audited(client_as_admin, admin_user, team):
    membership = MembershipFactory(team=team, role="viewer")
    url = _url(Membership, "change", membership.pk)
    response = admin_change(client_as_admin, url, _form_id(Membership), role="member")
    assert response.status_code == 302
    event = _the_update(membership)
    _assert_from_admin(event, admin_user)
    assert event.changes == {"role": ["viewer", "member"]}
    assert event.team_id == team.pk


def test_policy_edit_in_admin_is_audited_with_the_webhook_masked(client_as_admin, admin_user, team):
    policy = Policy(team=team, rpm=100)
    policy.alert_webhook_url = WEBHOOK
    policy.save()
    created = events_for(policy, action="create")[0]
    assert created.changes["alert_webhook_encrypted"] == [None, MASK]
    url = _url(Policy, "change", policy.pk)
    response = admin_change(client_as_admin, url, _form_id(Policy), rpm="50")
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _the_update(policy)
    _assert_from_admin(event, admin_user)
    assert event.changes == {"rpm": [100, 50]}
    assert event.team_id == team.pk
    # A new webhook changes the encrypted column: recorded as changed, never shown.
    policy.refresh_from_db()
    policy.alert_webhook_url = WEBHOOK + "-2"
    policy.save()
    rows = events_for(policy, action="update")
    assert rows[-1].changes == {"alert_webhook_encrypted": [MASK, MASK_CHANGED]}
    everything = "".join(str(e.changes) for e in events_for(policy))
    assert "hooks.example.com" not in everything
    assert policy.alert_webhook_encrypted not in everything


def test_provider_credential_change_in_admin_is_masked(client_as_admin, admin_user):
    provider = ProviderFactory(name="credentialed", kind=Provider.Kind.OPENAI)
    provider.set_api_key(UPSTREAM_SECRET)
    provider.save()
    token = provider.credentials_encrypted
    earlier = {e.pk for e in events_for(provider)}
    url = _url(Provider, "change", provider.pk)
    response = admin_change(
        client_as_admin, url, _form_id(Provider), region="us", api_key="sk-rotated-upstream"
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    (event,) = [e for e in events_for(provider) if e.pk not in earlier]
    _assert_from_admin(event, admin_user)
    assert event.changes["region"] == ["eu", "us"]
    assert event.changes["credentials_encrypted"] == [MASK, MASK_CHANGED]
    everything = "".join(str(e.changes) for e in events_for(provider))
    provider.refresh_from_db()
    for secret in (UPSTREAM_SECRET, "sk-rotated-upstream", token, provider.credentials_encrypted):
        assert secret not in everything


def test_deployment_edit_in_admin_is_audited(client_as_admin, admin_user):
    deployment = DeploymentFactory()
    url = _url(Deployment, "change", deployment.pk)
    response = admin_change(client_as_admin, url, _form_id(Deployment), context_window="64000")
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _the_update(deployment)
    _assert_from_admin(event, admin_user)
    assert event.changes == {"context_window": [128000, 64000]}


def test_agreement_edit_in_admin_is_audited(client_as_admin, admin_user):
    agreement = DataProcessingAgreement.objects.create(
        provider=ProviderFactory(name="dpa-holder"), retention_days=30
    )
    url = _url(DataProcessingAgreement, "change", agreement.pk)
    response = admin_change(
        client_as_admin, url, _form_id(DataProcessingAgreement), retention_days="0"
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _the_update(agreement)
    _assert_from_admin(event, admin_user)
    assert event.changes == {"retention_days": [30, 0]}


def test_deletion_in_admin_leaves_the_trail(client_as_admin, admin_user, team):
    key = api_key_issue(team=team, name="doomed").api_key
    pk, shown = key.pk, str(key)
    response = client_as_admin.post(_url(ApiKey, "delete", pk), {"post": "yes"})
    assert response.status_code == 302
    assert not ApiKey.objects.filter(pk=pk).exists()
    (deleted,) = events_for("tenants.apikey", pk, action="delete")
    _assert_from_admin(deleted, admin_user)
    assert deleted.object_repr == shown
    assert deleted.changes["name"] == ["doomed", None]
    assert deleted.changes["key_hash"] == [MASK, None]
    # The key's creation row is still there too, and so is the row after its team goes.
    assert events_for("tenants.apikey", pk, action="create")
    team_pk = team.pk
    Team.objects.get(pk=team_pk).delete()
    assert events_for("tenants.team", team_pk, action="delete")
    assert AuditEvent.objects.filter(team_id=team_pk).count() >= 3


def test_rows_survive_the_deletion_of_their_actor(client_as_admin, admin_user, team):
    admin_change(client_as_admin, _url(Team, "change", team.pk), _form_id(Team), name="Renamed")
    event = _the_update(team)
    admin_user.delete()
    event.refresh_from_db()
    assert event.actor_id == admin_user.pk or event.actor_id is None
    assert event.actor_repr == "root"


# --- The audit log's own admin ----------------------------------------------------------------


@pytest.fixture
def some_events(team):
    api_key_issue(team=team, name="alpha")
    api_key_issue(team=team, name="beta")
    return list(AuditEvent.objects.order_by("id"))


def test_audit_admin_is_read_only_even_for_superusers(client_as_admin, some_events):
    event = next(e for e in some_events if e.object_type == "tenants.apikey")
    assert client_as_admin.get(_url(AuditEvent, "add")).status_code == 403
    change = client_as_admin.get(_url(AuditEvent, "change", event.pk))
    assert change.status_code == 200
    key = ApiKey.objects.get(pk=event.object_id)
    assert _url(ApiKey, "change", key.pk) in change.content.decode()  # a link to the key
    assert b'name="_save"' not in change.content
    assert (
        client_as_admin.post(_url(AuditEvent, "change", event.pk), {"action": "x"}).status_code
        == 403
    )
    assert (
        client_as_admin.post(_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code
        == 403
    )
    bulk = client_as_admin.post(
        _url(AuditEvent, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    event.refresh_from_db()
    assert event.action == "create"


def test_auditor_sees_the_log_and_an_outsider_of_the_admin_does_not(client, some_events):
    auditor = UserFactory(username="auditor", is_staff=True)
    group = Group.objects.create(name="log readers")
    group.permissions.add(Permission.objects.get(codename="view_auditevent"))
    auditor.groups.add(group)
    client.force_login(auditor)
    assert client.get(_url(AuditEvent, "changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 200
    staff = UserFactory(username="staff-only", is_staff=True)
    client.force_login(staff)
    assert client.get(_url(AuditEvent, "changelist")).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 403


def test_changelist_searches_and_filters(client_as_admin, some_events, team):
    page = client_as_admin.get(_url(AuditEvent, "changelist"), {"q": "alpha"})
    assert page.status_code == 200
    shown = [e.pk for e in page.context["cl"].result_list]
    assert shown and all("alpha" in AuditEvent.objects.get(pk=pk).object_repr for pk in shown)
    page = client_as_admin.get(
        _url(AuditEvent, "changelist"), {"object_type": "tenants.apikey", "action": "create"}
    )
    assert {e.object_type for e in page.context["cl"].result_list} == {"tenants.apikey"}
    page = client_as_admin.get(_url(AuditEvent, "changelist"), {"source": "admin"})
    assert list(page.context["cl"].result_list) == []
    assert b"Export to CSV" in client_as_admin.get(_url(AuditEvent, "changelist")).content


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_streams_the_filtered_list(client_as_admin, some_events, team):
    rows = _csv(client_as_admin.get(reverse("admin:audit_auditevent_export"), {"q": "beta"}))
    expected = [e for e in some_events if "beta" in e.object_repr]
    assert [r["object_id"] for r in rows] == [e.object_id for e in reversed(expected)]
    row = rows[0]
    assert row["action"] == "create" and row["object_type"] == "tenants.apikey"
    assert row["team_id"] == str(team.pk)
    assert MASK in row["changes"]
    key = ApiKey.objects.get(name="beta")
    assert key.key_hash not in row["changes"]


def test_csv_export_action_exports_the_selected_rows(client_as_admin, some_events):
    chosen = some_events[:2]
    response = client_as_admin.post(
        _url(AuditEvent, "changelist"),
        {"action": "export_selected", "_selected_action": [e.pk for e in chosen]},
    )
    rows = _csv(response)
    assert sorted(r["object_id"] for r in rows) == sorted(e.object_id for e in chosen)
    assert list(rows[0]) == [
        "at",
        "actor",
        "actor_id",
        "source",
        "ip",
        "action",
        "object_type",
        "object_id",
        "object",
        "team_id",
        "changes",
        "request_id",
    ]


@pytest.mark.django_db(transaction=True)
async def test_csv_export_under_asgi_is_an_async_stream(admin_user, some_events):
    """Under ASGI (how the gateway is served) a sync iterator would be read to the end
    before the first byte; the export hands Django an async one instead."""
    client = AsyncClient()
    try:
        await client.aforce_login(admin_user)
        response = await client.get(reverse("admin:audit_auditevent_export"))
        assert response.status_code == 200
        assert response.streaming and response.is_async
        text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    finally:
        # The handler's queries ran on asgiref's executor thread: close its connection, or
        # the test database cannot be dropped at the end of the session.
        await sync_to_async(connections.close_all)()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["object_id"] for r in rows] == [e.object_id for e in reversed(some_events)]
