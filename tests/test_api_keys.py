"""Keys through the management API: the secret in the create and rotate responses only, other
teams' objects 404, rotation's grace period, mass-assignment refused, limits within the team's."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from policies.models import Policy
from tenants.keys import hash_secret
from tenants.models import ApiKey
from tenants.services import api_key_issue

from .factories import DailyUsageFactory, MembershipFactory
from .helpers_api import client_for, error_of, make_cast

pytestmark = pytest.mark.django_db

T = "/api/v1/teams/search"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def lead(cast):
    return client_for(cast.users["lead"])


def test_a_keys_secret_is_in_its_create_response_only(cast, lead):
    created = lead.post(f"{T}/keys/", {"name": "ci", "expires_in_days": 30})
    assert created.status_code == 201
    body = created.json()
    secret = body["secret"]
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == hash_secret(secret) and body["prefix"] == key.prefix
    assert secret.startswith(body["prefix"])
    # Never again: not in the list, the key, its limits, the team; not stored in clear.
    for path in (f"{T}/keys/", f"{T}/keys/{key.pk}/", f"{T}/keys/{key.pk}/limits/", f"{T}/"):
        response = lead.get(path)
        assert response.status_code == 200
        assert secret not in response.content.decode()
        assert "secret" not in json.dumps(response.json())
    assert secret not in json.dumps(list(ApiKey.objects.values()), default=str)


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_the_grace(cast, lead):
    old = api_key_issue(team=cast.team, name="svc", owner=cast.users["lead"])
    response = lead.post(f"{T}/keys/{old.api_key.pk}/rotate/", {"grace_seconds": 3600})
    assert response.status_code == 201
    new = response.json()
    assert new["secret"] != old.secret and new["name"] == "svc"
    assert ApiKey.objects.get(pk=new["id"]).key_hash == hash_secret(new["secret"])
    old.api_key.refresh_from_db()
    assert old.api_key.revoked_at is None and old.api_key.is_active
    assert old.api_key.expires_at <= timezone.now() + timedelta(seconds=3601)
    # The new secret is not shown again either.
    assert new["secret"] not in lead.get(f"{T}/keys/").content.decode()


def test_rotation_without_grace_revokes_the_old_key(cast, lead):
    old = api_key_issue(team=cast.team, name="svc", owner=cast.users["lead"]).api_key
    assert lead.post(f"{T}/keys/{old.pk}/rotate/").status_code == 201
    old.refresh_from_db()
    assert old.revoked_at is not None
    # A revoked key cannot be rotated again: a 400 in the API's error shape.
    again = lead.post(f"{T}/keys/{old.pk}/rotate/")
    assert again.status_code == 400 and error_of(again)["code"] == "invalid"


def test_grace_beyond_the_maximum_is_refused(cast, lead, settings):
    settings.GATEWAY_API_MAX_GRACE_S = 60
    key = api_key_issue(team=cast.team, name="svc", owner=cast.users["lead"]).api_key
    response = lead.post(f"{T}/keys/{key.pk}/rotate/", {"grace_seconds": 61})
    assert response.status_code == 400
    assert "grace_seconds" in error_of(response)["fields"]


def test_another_teams_key_usage_and_member_are_404(cast, lead):
    theirs = api_key_issue(team=cast.other_team, name="theirs").api_key
    their_member = cast.users["outsider"].memberships.get()
    DailyUsageFactory(team=cast.other_team, model="secret-model")
    for path in (
        f"{T}/keys/{theirs.pk}/",
        f"{T}/keys/{theirs.pk}/limits/",
        f"{T}/members/{their_member.pk}/",
        "/api/v1/teams/ads/keys/",
        f"/api/v1/teams/ads/keys/{theirs.pk}/",
        "/api/v1/teams/ads/members/",
        "/api/v1/usage/?team=ads",
    ):
        response = lead.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"
    for method, path in (
        ("post", f"{T}/keys/{theirs.pk}/revoke/"),
        ("post", f"/api/v1/teams/ads/keys/{theirs.pk}/revoke/"),
        ("post", f"/api/v1/teams/ads/keys/{theirs.pk}/rotate/"),
        ("patch", f"{T}/members/{their_member.pk}/"),
        ("delete", f"/api/v1/teams/ads/members/{their_member.pk}/"),
    ):
        response = lead.delete(path) if method == "delete" else getattr(lead, method)(path, {})
        assert response.status_code == 404, path
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    # Their usage never appears in ours either.
    usage = lead.get("/api/v1/usage/", {"group_by": "model"}).json()
    assert all(row["model"] != "secret-model" for row in usage["results"])


@pytest.mark.parametrize(
    "field", ["team", "owner", "key_hash", "prefix", "revoked_at", "id", "secret"]
)
def test_fields_a_client_may_not_set_are_refused(cast, lead, field):
    response = lead.post(f"{T}/keys/", {"name": "ci", field: "x"})
    assert response.status_code == 400
    assert error_of(response)["fields"] == {field: ["unknown field"]}
    assert not ApiKey.objects.exists()


def test_a_key_is_owned_by_its_creator_whatever_is_sent(cast):
    member = client_for(cast.users["member"])
    response = member.post(f"{T}/keys/", {"name": "ci", "owner": cast.users["owner"].pk})
    assert response.status_code == 400


def test_a_project_of_another_team_is_refused(cast, lead):
    from .factories import ProjectFactory

    ProjectFactory(team=cast.other_team, slug="theirs")
    response = lead.post(f"{T}/keys/", {"name": "ci", "project": "theirs"})
    assert response.status_code == 400 and "project" in error_of(response)["fields"]


def test_key_limits_stay_within_the_teams(cast, lead):
    Policy.objects.create(team=cast.team, rpm=100)
    key = api_key_issue(team=cast.team, name="k", owner=cast.users["lead"]).api_key
    too_much = lead.patch(f"{T}/keys/{key.pk}/limits/", {"rpm": 101})
    assert too_much.status_code == 400 and "rpm" in error_of(too_much)["fields"]
    ok = lead.patch(f"{T}/keys/{key.pk}/limits/", {"rpm": 50, "monthly_budget_usd": "12.5"})
    assert ok.status_code == 200
    assert ok.json() == {"rpm": 50, "tpm": None, "monthly_budget_usd": "12.500000"}
    assert Policy.objects.get(api_key=key).rpm == 50


def test_team_policy_stays_within_the_organizations(cast):
    owner = client_for(cast.users["owner"])
    Policy.objects.create(organization=cast.team.organization, monthly_budget_usd=1000)
    refused = owner.patch(f"{T}/policy/", {"monthly_budget_usd": "1000.01"})
    assert refused.status_code == 400 and "monthly_budget_usd" in error_of(refused)["fields"]
    done = owner.patch(f"{T}/policy/", {"monthly_budget_usd": "800", "tpm": 5000})
    assert done.status_code == 200
    body = done.json()
    assert body["team"] == {"rpm": None, "tpm": 5000, "monthly_budget_usd": "800.000000"}
    assert body["organization"]["monthly_budget_usd"] == "1000.000000"
    # The audit row names the token's user and the API, with the change before and after.
    event = AuditEvent.objects.filter(object_type="policies.policy", source="api").get()
    assert event.actor == cast.users["owner"]
    assert event.changes["tpm"] == [None, 5000]


def test_key_list_filters_and_spend(cast, lead):
    mine = api_key_issue(team=cast.team, name="mine", owner=cast.users["lead"]).api_key
    gone = api_key_issue(team=cast.team, name="gone", owner=cast.users["member"]).api_key
    gone.revoked_at = timezone.now()
    gone.save()
    DailyUsageFactory(team=cast.team, api_key=mine, day=timezone.now().date(), cost_usd="2.5")
    active = lead.get(f"{T}/keys/", {"active": "true"}).json()["results"]
    assert [k["name"] for k in active] == ["mine"]
    assert active[0]["spend_this_month_usd"] == "2.500000"
    assert [k["name"] for k in lead.get(f"{T}/keys/", {"active": "false"}).json()["results"]] == [
        "gone"
    ]
    MembershipFactory(team=cast.team, user=cast.users["outsider"], role="viewer")
    assert lead.get(f"{T}/keys/", {"mine": "true"}).json()["count"] == 1
    assert lead.get(f"{T}/keys/", {"active": "maybe"}).status_code == 400
