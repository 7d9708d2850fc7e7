"""The portal's role-by-endpoint matrix: who gets 200, 403 or 404 on every page and form.

The rule (tenants/roles.py): an object outside the user's teams is a 404 (never a 403, never
shown); inside the team, an action the role may not do is a 403. A superuser counts as an owner
of every team."""

import pytest

USERS = ("owner", "lead", "member", "viewer", "outsider", "superuser")
T = "/portal/teams/search/"


def _get(client, crew, who: str, url: str) -> int:
    client.force_login(crew["users"][who])
    return client.get(url).status_code


def _post(client, crew, who: str, url: str, data: dict) -> int:
    client.force_login(crew["users"][who])
    return client.post(url, data).status_code


def _key(crew, name: str) -> int:
    return crew["keys"][name].pk


def _ms(crew, role: str) -> int:
    return crew["memberships"][role].pk


# expected status per user, in USERS order
READ_ALL = (200, 200, 200, 200, 404, 200)
CREATE = (200, 200, 200, 403, 404, 200)
OWN_KEY_OF_MEMBER = (200, 200, 200, 403, 404, 200)
LEADS_KEY = (200, 200, 403, 403, 404, 200)
MANAGE_MEMBER = (200, 200, 403, 403, 404, 200)
MANAGE_OWNER = (200, 403, 403, 403, 404, 200)
VIEWERS_OWN = (200, 200, 403, 200, 404, 200)

GETS = [
    ("team page", lambda c: T, READ_ALL),
    ("keys", lambda c: T + "keys/", READ_ALL),
    ("members", lambda c: T + "members/", READ_ALL),
    ("new key form", lambda c: T + "keys/new/", CREATE),
    ("rotate member's key", lambda c: T + f"keys/{_key(c, 'member')}/rotate/", OWN_KEY_OF_MEMBER),
    ("revoke member's key", lambda c: T + f"keys/{_key(c, 'member')}/revoke/", OWN_KEY_OF_MEMBER),
    ("limits member's key", lambda c: T + f"keys/{_key(c, 'member')}/limits/", OWN_KEY_OF_MEMBER),
    ("rotate lead's key", lambda c: T + f"keys/{_key(c, 'lead')}/rotate/", LEADS_KEY),
    ("revoke lead's key", lambda c: T + f"keys/{_key(c, 'lead')}/revoke/", LEADS_KEY),
    ("limits lead's key", lambda c: T + f"keys/{_key(c, 'lead')}/limits/", LEADS_KEY),
    ("remove a viewer", lambda c: T + f"members/{_ms(c, 'guest')}/remove/", MANAGE_MEMBER),
    # The viewer's own membership: managers may remove it, and the viewer may leave.
    ("viewer's own", lambda c: T + f"members/{_ms(c, 'viewer')}/remove/", VIEWERS_OWN),
    ("remove owner", lambda c: T + f"members/{_ms(c, 'owner')}/remove/", MANAGE_OWNER),
]


@pytest.mark.parametrize(("name", "url", "expected"), GETS, ids=[g[0] for g in GETS])
@pytest.mark.parametrize("who", USERS)
def test_get_matrix(client, crew, name, url, expected, who):
    assert _get(client, crew, who, url(crew)) == expected[USERS.index(who)]


POSTS = [
    ("create key", lambda c: T + "keys/new/", {"name": "new"}, (200, 200, 200, 403, 404, 200)),
    (
        "revoke member's key",
        lambda c: T + f"keys/{_key(c, 'member')}/revoke/",
        {},
        (302, 302, 302, 403, 404, 302),
    ),
    (
        "revoke lead's key",
        lambda c: T + f"keys/{_key(c, 'lead')}/revoke/",
        {},
        (302, 302, 403, 403, 404, 302),
    ),
    (
        "limits of member's key",
        lambda c: T + f"keys/{_key(c, 'member')}/limits/",
        {"rpm": "10"},
        (302, 302, 302, 403, 404, 302),
    ),
    (
        "add member",
        lambda c: T + "members/",
        {"user": "nobody@example.com", "role": "viewer"},
        (302, 302, 403, 403, 404, 302),
    ),
    (
        "viewer to member",
        lambda c: T + f"members/{_ms(c, 'guest')}/role/",
        {"role": "member"},
        (302, 302, 403, 403, 404, 302),
    ),
    (
        "remove a viewer",
        lambda c: T + f"members/{_ms(c, 'guest')}/remove/",
        {},
        (302, 302, 403, 403, 404, 302),
    ),
]


@pytest.mark.parametrize(("name", "url", "data", "expected"), POSTS, ids=[p[0] for p in POSTS])
@pytest.mark.parametrize("who", USERS)
def test_post_matrix(client, crew, name, url, data, expected, who):
    from .support import make_user

    make_user("nobody")  # the account "add member" adds
    assert _post(client, crew, who, url(crew), data) == expected[USERS.index(who)]


def test_viewer_sees_no_forms_or_buttons(client, crew):
    client.force_login(crew["users"]["viewer"])
    for page in ("", "keys/", "members/"):
        html = client.get(T + page).content.decode()
        assert 'method="post"' not in html.replace('method="post" action="/portal/logout/"', ""), (
            page
        )
        assert "New API key" not in html and "Revoke" not in html and "Add a member" not in html


def test_member_gets_buttons_only_for_their_own_keys(client, crew):
    client.force_login(crew["users"]["member"])
    html = client.get(T + "keys/").content.decode()
    assert f"keys/{_key(crew, 'member')}/revoke/" in html
    assert f"keys/{_key(crew, 'lead')}/revoke/" not in html


# --- Another team's objects: 404, whoever asks, wherever they are addressed -------------------
def test_another_teams_key_is_404_even_under_ones_own_team(client, crew):
    ads_key = _key(crew, "ads")
    client.force_login(crew["users"]["owner"])
    for action in ("rotate", "revoke", "limits"):
        assert client.get(T + f"keys/{ads_key}/{action}/").status_code == 404
        assert client.post(T + f"keys/{ads_key}/{action}/").status_code == 404
        url = f"/portal/teams/ads/keys/{ads_key}/{action}/"
        assert client.get(url).status_code == 404
    crew["keys"]["ads"].refresh_from_db()
    assert crew["keys"]["ads"].revoked_at is None


def test_another_teams_usage_and_members_are_404_and_never_shown(client, crew):
    client.force_login(crew["users"]["lead"])
    for page in ("", "keys/", "members/"):
        assert client.get(f"/portal/teams/ads/{page}").status_code == 404
    assert client.get("/teams/ads/analytics/").status_code == 404
    outsider = crew["memberships"]["outsider"].pk
    assert client.get(T + f"members/{outsider}/remove/").status_code == 404
    assert client.post(T + f"members/{outsider}/role/", {"role": "viewer"}).status_code == 404
    for page in ("", "keys/", "members/"):
        html = client.get(T + page).content.decode()
        assert "ads-secret-key" not in html and "outsider" not in html


def test_an_unknown_team_is_404_like_a_foreign_one(client, crew):
    client.force_login(crew["users"]["owner"])
    assert client.get("/portal/teams/no-such-team/").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, crew):
    response = client.get(T + "keys/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={T}keys/"


def test_switcher_lists_ones_own_teams_and_every_team_for_a_superuser(client, crew):
    client.force_login(crew["users"]["lead"])
    html = client.get(T).content.decode()
    assert 'href="/portal/teams/search/"' in html and 'href="/portal/teams/ads/"' not in html
    client.force_login(crew["users"]["superuser"])
    html = client.get(T).content.decode()
    assert 'href="/portal/teams/search/"' in html and 'href="/portal/teams/ads/"' in html


def test_landing_opens_the_first_team_or_says_there_is_none(client, crew):
    from .support import make_user

    client.force_login(crew["users"]["viewer"])
    response = client.get("/portal/")
    assert response.status_code == 302 and response["Location"] == T
    client.force_login(make_user("loner"))
    response = client.get("/portal/")
    assert response.status_code == 200
    assert "You're not in a team yet" in response.content.decode()
