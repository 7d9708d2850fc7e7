"""Fixtures of the portal tests: one team with a user of each role, another team with its own
key and member, and a superuser in no team (tests/conftest.py's team is "search")."""

import pytest

from tenants.services import api_key_issue
from tests.factories import MembershipFactory, TeamFactory

from .support import ROLES, make_user


@pytest.fixture
def crew(db):
    """Team "search" with an owner, a lead, a member and a viewer; team "ads" with its own key
    and member (the outsider); a superuser who belongs to no team."""
    search = TeamFactory(slug="search", name="Search")
    ads = TeamFactory(slug="ads", name="Ads")
    users = {}
    memberships = {}
    for role in ROLES:
        users[role] = make_user(role)
        memberships[role] = MembershipFactory(team=search, user=users[role], role=role)
    # A second viewer: what the others act on (the first may act on itself: step down, leave).
    users["guest"] = make_user("guest")
    memberships["guest"] = MembershipFactory(team=search, user=users["guest"], role="viewer")
    users["outsider"] = make_user("outsider")
    memberships["outsider"] = MembershipFactory(team=ads, user=users["outsider"], role="lead")
    users["superuser"] = make_user("root", is_superuser=True, is_staff=True)
    keys = {
        "member": api_key_issue(team=search, name="member-key", owner=users["member"]).api_key,
        "lead": api_key_issue(team=search, name="lead-key", owner=users["lead"]).api_key,
        "ads": api_key_issue(team=ads, name="ads-secret-key", owner=users["outsider"]).api_key,
    }
    return {
        "search": search,
        "ads": ads,
        "users": users,
        "memberships": memberships,
        "keys": keys,
    }
