"""The portal's member pages: add by username or email, change roles, remove, within what the
role may grant (leads: up to member; owners: everything)."""

from tenants.models import Membership

from .support import make_user

T = "/portal/teams/search/"


def test_a_lead_adds_an_existing_user_by_email(client, crew):
    newcomer = make_user("newcomer", email="New.Comer@example.com")
    client.force_login(crew["users"]["lead"])
    response = client.post(T + "members/", {"user": "new.comer@example.com", "role": "viewer"})
    assert response.status_code == 302
    assert Membership.objects.get(team=crew["search"], user=newcomer).role == "viewer"
    html = client.get(T + "members/").content.decode()
    assert "newcomer" in html and "joined as viewer" in html


def test_adding_an_unknown_or_present_user_is_a_form_error(client, crew):
    client.force_login(crew["users"]["lead"])
    response = client.post(T + "members/", {"user": "ghost", "role": "member"})
    assert response.status_code == 400
    assert "No single active account" in response.content.decode()
    response = client.post(T + "members/", {"user": "viewer", "role": "member"})
    assert response.status_code == 400 and "Already a member" in response.content.decode()


def test_a_lead_cannot_grant_owner_but_an_owner_can(client, crew):
    viewer = crew["memberships"]["viewer"]
    client.force_login(crew["users"]["lead"])
    html = client.get(T + "members/").content.decode()
    assert '<option value="owner"' not in html
    assert client.post(T + f"members/{viewer.pk}/role/", {"role": "owner"}).status_code == 403
    viewer.refresh_from_db()
    assert viewer.role == "viewer"

    client.force_login(crew["users"]["owner"])
    assert client.post(T + f"members/{viewer.pk}/role/", {"role": "owner"}).status_code == 302
    viewer.refresh_from_db()
    assert viewer.role == "owner"


def test_a_lead_cannot_change_or_remove_the_owner(client, crew):
    owner = crew["memberships"]["owner"]
    client.force_login(crew["users"]["lead"])
    assert client.post(T + f"members/{owner.pk}/role/", {"role": "viewer"}).status_code == 403
    assert client.post(T + f"members/{owner.pk}/remove/").status_code == 403
    assert Membership.objects.filter(pk=owner.pk, role="owner").exists()


def test_removal_asks_first_then_removes(client, crew):
    viewer = crew["memberships"]["viewer"]
    client.force_login(crew["users"]["lead"])
    html = client.get(T + f"members/{viewer.pk}/remove/").content.decode()
    assert "Remove viewer from Search?" in html
    assert Membership.objects.filter(pk=viewer.pk).exists()
    response = client.post(T + f"members/{viewer.pk}/remove/", follow=True)
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert "left Search" in response.content.decode()
    # Gone from the team: the former viewer's pages are now 404.
    client.force_login(crew["users"]["viewer"])
    assert client.get(T).status_code == 404


def test_the_teams_last_head_cannot_be_removed(client, crew):
    owner, lead = crew["memberships"]["owner"], crew["memberships"]["lead"]
    client.force_login(crew["users"]["owner"])
    assert client.post(T + f"members/{lead.pk}/remove/").status_code == 302
    response = client.post(T + f"members/{owner.pk}/remove/", follow=True)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert "without an owner or lead" in response.content.decode()


def test_anyone_may_leave_and_lands_on_the_portal(client, crew):
    viewer = crew["memberships"]["viewer"]
    client.force_login(crew["users"]["viewer"])
    html = client.get(T + "members/").content.decode()
    assert "Leave team" in html and 'name="role"' not in html  # nothing to choose below viewer
    assert "Leave Search?" in client.get(T + f"members/{viewer.pk}/remove/").content.decode()
    response = client.post(T + f"members/{viewer.pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert not Membership.objects.filter(pk=viewer.pk).exists()


def test_a_lead_appoints_a_lead_and_only_an_owner_demotes_one(client, crew):
    guest = crew["memberships"]["guest"]
    client.force_login(crew["users"]["lead"])
    assert client.post(T + f"members/{guest.pk}/role/", {"role": "lead"}).status_code == 302
    guest.refresh_from_db()
    assert guest.role == "lead"
    assert client.post(T + f"members/{guest.pk}/role/", {"role": "member"}).status_code == 403
    client.force_login(crew["users"]["owner"])
    assert client.post(T + f"members/{guest.pk}/role/", {"role": "member"}).status_code == 302
    guest.refresh_from_db()
    assert guest.role == "member"
