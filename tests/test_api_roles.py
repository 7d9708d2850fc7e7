"""The role-by-endpoint matrix of the management API: each caller (with a token holding every
scope, so only the role decides) against each operation. Outside the caller's teams: 404;
inside, an action the role may not do: 403."""

import pytest

from tenants.models import ApiKey
from tenants.services import api_key_issue

from .factories import (
    AgreementFactory,
    DeploymentFactory,
    MembershipFactory,
    ProviderFactory,
    UserFactory,
)
from .helpers_api import ROLES, client_for, make_cast

pytestmark = pytest.mark.django_db

T = "/api/v1/teams/search"


def _expect(table: dict[str, int]) -> list:
    return [pytest.param(role, table[role], id=role) for role in ROLES]


VIEW = {r: 200 for r in ROLES} | {"outsider": 404, "compliance": 404}
EVERYONE = dict.fromkeys(ROLES, 200)


@pytest.fixture
def cast():
    return make_cast()


def _call(cast, role, method, path, body=None):
    client = client_for(cast.users[role])
    return client.get(path) if method == "get" else getattr(client, method)(path, body)


@pytest.mark.parametrize(("role", "status"), _expect(VIEW))
@pytest.mark.parametrize(
    "path",
    [f"{T}/", f"{T}/members/", f"{T}/keys/", f"{T}/policy/", "/api/v1/usage/?team=search"],
)
def test_reading_a_team(cast, role, status, path):
    assert _call(cast, role, "get", path).status_code == status


@pytest.mark.parametrize(("role", "status"), _expect(VIEW))
def test_reading_a_key_and_its_limits(cast, role, status):
    key = api_key_issue(team=cast.team, name="k", owner=cast.users["lead"]).api_key
    assert _call(cast, role, "get", f"{T}/keys/{key.pk}/").status_code == status
    assert _call(cast, role, "get", f"{T}/keys/{key.pk}/limits/").status_code == status


MANAGE_MEMBERS = VIEW | {"member": 403, "viewer": 403, "lead": 201, "owner": 201}
MANAGE_HEADS = MANAGE_MEMBERS | {"lead": 403}


@pytest.mark.parametrize(
    ("role", "status"), _expect(MANAGE_MEMBERS | {r: 201 for r in ("platform", "superuser")})
)
def test_adding_a_member(cast, role, status):
    UserFactory(username="newcomer")
    response = _call(
        cast, role, "post", f"{T}/members/", {"username": "newcomer", "role": "viewer"}
    )
    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("role", "status"), _expect(MANAGE_HEADS | {r: 201 for r in ("platform", "superuser")})
)
def test_adding_an_owner_takes_an_owner(cast, role, status):
    UserFactory(username="newcomer")
    body = {"username": "newcomer", "role": "owner"}
    response = _call(cast, role, "post", f"{T}/members/", body)
    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("role", "status"), _expect(MANAGE_MEMBERS | {r: 201 for r in ("platform", "superuser")})
)
def test_leads_appoint_leads(cast, role, status):
    UserFactory(username="newcomer")
    body = {"username": "newcomer", "role": "lead"}
    response = _call(cast, role, "post", f"{T}/members/", body)
    assert response.status_code == status, response.content


def _membership_of(cast, role):
    return cast.users[role].memberships.get(team=cast.team)


@pytest.mark.parametrize(
    ("role", "status"),
    _expect(MANAGE_MEMBERS | dict.fromkeys(("owner", "lead", "platform", "superuser"), 200)),
)
def test_changing_a_viewers_role(cast, role, status):
    target = _membership_of(cast, "viewer")
    response = _call(cast, role, "patch", f"{T}/members/{target.pk}/", {"role": "member"})
    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("role", "status"),
    _expect(MANAGE_HEADS | dict.fromkeys(("owner", "platform", "superuser"), 204)),
)
def test_removing_another_lead_takes_an_owner(cast, role, status):
    other = MembershipFactory(team=cast.team, role="lead", user=UserFactory(username="lead2"))
    response = _call(cast, role, "delete", f"{T}/members/{other.pk}/")
    assert response.status_code == status, response.content


@pytest.mark.parametrize("role", ["lead", "member", "viewer"])
def test_anyone_may_leave(cast, role):
    mine = _membership_of(cast, role)
    response = _call(cast, role, "delete", f"{T}/members/{mine.pk}/")
    assert response.status_code == 204, response.content
    # Gone from the team: its objects are now a 404.
    assert _call(cast, role, "get", f"{T}/").status_code == 404


def test_the_last_owner_cannot_leave(cast):
    mine = _membership_of(cast, "owner")
    _membership_of(cast, "lead").delete()
    response = _call(cast, "owner", "delete", f"{T}/members/{mine.pk}/")
    assert response.status_code == 400


CREATE_KEY = (
    VIEW | {"viewer": 403} | {r: 201 for r in ("owner", "lead", "member", "platform", "superuser")}
)


@pytest.mark.parametrize(("role", "status"), _expect(CREATE_KEY))
def test_creating_a_key(cast, role, status):
    response = _call(cast, role, "post", f"{T}/keys/", {"name": "ci"})
    assert response.status_code == status, response.content
    if status == 201:
        assert ApiKey.objects.get(pk=response.json()["id"]).owner == cast.users[role]


# A key the lead owns: the member (not its owner) and the viewer may not touch it.
MANAGE_LEADS_KEY = VIEW | {"member": 403, "viewer": 403}


@pytest.mark.parametrize(
    ("role", "status"),
    _expect(MANAGE_LEADS_KEY | {r: 201 for r in ("owner", "lead", "platform", "superuser")}),
)
def test_rotating_the_leads_key(cast, role, status):
    key = api_key_issue(team=cast.team, name="k", owner=cast.users["lead"]).api_key
    response = _call(cast, role, "post", f"{T}/keys/{key.pk}/rotate/", {"grace_seconds": 60})
    assert response.status_code == status, response.content


@pytest.mark.parametrize(("role", "status"), _expect(MANAGE_LEADS_KEY))
def test_revoking_the_leads_key(cast, role, status):
    key = api_key_issue(team=cast.team, name="k", owner=cast.users["lead"]).api_key
    response = _call(cast, role, "post", f"{T}/keys/{key.pk}/revoke/")
    assert response.status_code == status, response.content
    key.refresh_from_db()
    assert (key.revoked_at is not None) == (status == 200)


@pytest.mark.parametrize(("role", "status"), _expect(MANAGE_LEADS_KEY))
def test_limiting_the_leads_key(cast, role, status):
    key = api_key_issue(team=cast.team, name="k", owner=cast.users["lead"]).api_key
    response = _call(cast, role, "patch", f"{T}/keys/{key.pk}/limits/", {"rpm": 10})
    assert response.status_code == status, response.content


def test_a_member_manages_their_own_key(cast):
    key = api_key_issue(team=cast.team, name="mine", owner=cast.users["member"]).api_key
    client = client_for(cast.users["member"])
    assert client.patch(f"{T}/keys/{key.pk}/limits/", {"rpm": 5}).json()["rpm"] == 5
    assert client.post(f"{T}/keys/{key.pk}/revoke/").status_code == 200


EDIT_POLICY = VIEW | {"lead": 403, "member": 403, "viewer": 403}


@pytest.mark.parametrize(("role", "status"), _expect(EDIT_POLICY))
def test_editing_the_team_policy_takes_an_owner(cast, role, status):
    response = _call(cast, role, "patch", f"{T}/policy/", {"rpm": 100})
    assert response.status_code == status, response.content


@pytest.mark.parametrize(("role", "status"), _expect(EVERYONE))
def test_reading_agreements_and_health(cast, role, status):
    agreement = AgreementFactory()
    DeploymentFactory()
    assert _call(cast, role, "get", "/api/v1/agreements/").status_code == status
    assert _call(cast, role, "get", f"/api/v1/agreements/{agreement.pk}/").status_code == status
    assert _call(cast, role, "get", "/api/v1/deployments/health/").status_code == status


def test_someone_without_any_role_reads_no_agreements(cast):
    AgreementFactory()
    client = client_for(UserFactory(username="nobody"))
    assert client.get("/api/v1/agreements/").status_code == 403
    assert client.get("/api/v1/deployments/health/").status_code == 403
    assert client.get("/api/v1/teams/").json()["results"] == []


WRITE_AGREEMENTS = dict.fromkeys(ROLES, 403) | {
    r: 201 for r in ("compliance", "platform", "superuser")
}


@pytest.mark.parametrize(("role", "status"), _expect(WRITE_AGREEMENTS))
def test_writing_agreements_takes_a_compliance_officer(cast, role, status):
    ProviderFactory(name="acme")
    body = {"provider": "acme", "status": "signed", "signed_on": "2026-01-01", "regions": ["eu"]}
    response = _call(cast, role, "post", "/api/v1/agreements/", body)
    assert response.status_code == status, response.content
    if status == 201:
        changed = _call(
            cast, role, "patch", f"/api/v1/agreements/{response.json()['id']}/", {"scc": True}
        )
        assert changed.status_code == 200 and changed.json()["scc"] is True


def test_team_list_shows_only_the_callers_teams(cast):
    mine = client_for(cast.users["viewer"]).get("/api/v1/teams/").json()["results"]
    assert [(t["slug"], t["role"]) for t in mine] == [("search", "viewer")]
    everything = client_for(cast.users["platform"]).get("/api/v1/teams/").json()["results"]
    assert {t["slug"] for t in everything} == {"search", "ads"}
