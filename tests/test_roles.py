"""Team roles: what owners, leads, members and viewers may do, and that outsiders may do
nothing and see no team."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from compliance.roles import PLATFORM_ADMIN
from tenants.roles import PLATFORM_ADMIN_GROUP, Action, can, role_of, teams_in_scope, teams_of
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
