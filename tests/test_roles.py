"""Team roles: what owners, leads, members and viewers may do, and that outsiders may do
nothing and see no team."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from compliance.roles import PLATFORM_ADMIN
from tenants.roles import (
    PLATFORM_ADMIN_GROUP,
    Action,
    can,
    may_grant,
    may_set_role,
    role_of,
    teams_in_scope,
    teams_of,
)
from tenants.services import api_key_issue

from .factories import MembershipFactory, TeamFactory, UserFactory

# role -> the actions it may do (on the team, or on a key it does not own).
EXPECTED = {
    "owner": set(Action),
    "lead": {
        Action.VIEW,
        Action.KEY_CREATE_OWN,
        Action.KEY_MANAGE_OWN,
        Action.KEY_MANAGE_ANY,
        Action.MEMBERS_MANAGE,
    },
    "member": {Action.VIEW, Action.KEY_CREATE_OWN, Action.KEY_MANAGE_OWN},
    "viewer": {Action.VIEW},
    "outsider": set(),
}


@pytest.fixture
def people(team, other_team):
    users = {}
    for role in ("owner", "lead", "member", "viewer"):
        users[role] = MembershipFactory(team=team, role=role, user=UserFactory(username=role)).user
    users["outsider"] = MembershipFactory(
        team=other_team, role="owner", user=UserFactory(username="outsider")
    ).user
    return users


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_may_do_exactly_its_actions_in_the_team(people, team, role):
    allowed = {action for action in Action if can(people[role], action, team)}
    assert allowed == EXPECTED[role]


def test_role_of_reads_the_membership_and_is_none_for_outsiders(people, team):
    assert role_of(people["lead"], team) == "lead"
    assert role_of(people["viewer"], team) == "viewer"
    assert role_of(people["outsider"], team) is None
    assert role_of(AnonymousUser(), team) is None


def test_member_manages_own_keys_only(people, team):
    own = api_key_issue(team=team, name="mine", owner=people["member"]).api_key
    theirs = api_key_issue(team=team, name="theirs", owner=people["lead"]).api_key
    unowned = api_key_issue(team=team, name="service").api_key
    member = people["member"]
    assert can(member, Action.KEY_MANAGE_OWN, team, key=own)
    assert not can(member, Action.KEY_MANAGE_OWN, team, key=theirs)
    assert not can(member, Action.KEY_MANAGE_OWN, team, key=unowned)
    # A lead manages any key of the team, also under the *_OWN action.
    assert can(people["lead"], Action.KEY_MANAGE_OWN, team, key=own)
    assert can(people["lead"], Action.KEY_MANAGE_ANY, team, key=unowned)
    # A viewer manages none, not even one somebody made them owner of.
    viewers = api_key_issue(team=team, name="v", owner=people["viewer"]).api_key
    assert not can(people["viewer"], Action.KEY_MANAGE_OWN, team, key=viewers)


def test_a_key_of_another_team_is_never_allowed(people, team, other_team):
    foreign = api_key_issue(team=other_team, name="x", owner=people["owner"]).api_key
    assert not can(people["owner"], Action.KEY_MANAGE_OWN, team, key=foreign)
    assert not can(people["owner"], Action.KEY_MANAGE_ANY, team, key=foreign)


def test_teams_of_lists_only_the_users_teams(people, team, other_team):
    third = TeamFactory(slug="third")
    MembershipFactory(team=third, role="viewer", user=people["member"])
    assert set(teams_of(people["member"])) == {team, third}
    assert list(teams_of(people["outsider"])) == [other_team]
    assert list(teams_of(AnonymousUser())) == []


def test_superuser_and_platform_admin_count_as_owner_everywhere(db, team, other_team):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    admin = UserFactory(username="platform", is_staff=True)
    admin.groups.add(Group.objects.create(name=PLATFORM_ADMIN_GROUP))
    for user in (root, admin):
        assert role_of(user, team) == "owner"
        assert all(can(user, action, other_team) for action in Action)
        assert set(teams_in_scope(user)) == {team, other_team}
        # The portal's list stays the teams they belong to.
        assert list(teams_of(user)) == []


def test_inactive_user_may_do_nothing(people, team):
    viewer = people["viewer"]
    viewer.is_active = False
    viewer.save()
    assert role_of(viewer, team) is None
    assert not can(viewer, Action.VIEW, team)
    assert list(teams_of(viewer)) == []


def test_platform_admin_group_name_is_the_one_creategroups_makes():
    assert PLATFORM_ADMIN_GROUP == PLATFORM_ADMIN


# --- Who may change whose role -----------------------------------------------------------------


def test_lead_manages_members_and_appoints_leads_but_not_owners(people, team):
    lead = people["lead"]
    assert may_grant(lead, team, "member") and may_grant(lead, team, "viewer")
    assert may_grant(lead, team, "lead")
    assert not may_grant(lead, team, "owner")
    assert may_set_role(lead, team, current="viewer", new="member")
    assert may_set_role(lead, team, current="member", new=None)
    # Another lead, or an owner, is the owners' business.
    assert not may_set_role(lead, team, current="lead", new="member")
    assert not may_set_role(lead, team, current="lead", new=None)
    assert not may_set_role(lead, team, current="owner", new="lead")


def test_owner_may_change_any_role(people, team):
    owner = people["owner"]
    assert may_set_role(owner, team, current="lead", new="viewer")
    assert may_set_role(owner, team, current="member", new="owner")
    assert may_set_role(owner, team, current="owner", new=None)


def test_members_and_viewers_change_nobody_but_may_leave(people, team):
    for role in ("member", "viewer"):
        user = people[role]
        assert not may_grant(user, team, "viewer")
        assert not may_set_role(user, team, current="viewer", new=None)
        assert may_set_role(user, team, current=role, new=None, target=user)
    # Stepping down is allowed to a lead too; stepping up is not.
    lead = people["lead"]
    assert may_set_role(lead, team, current="lead", new="member", target=lead)
    member = people["member"]
    assert not may_set_role(member, team, current="member", new="lead", target=member)
    assert not may_set_role(
        people["outsider"], team, current="owner", new=None, target=people["outsider"]
    )
