"""Every change made in the portal leaves an audit row: who (the signed-in user), from where
(source "portal" and the client address), what; and never the secret."""

from audit.models import AuditEvent
from tenants.models import ApiKey

T = "/portal/teams/search/"


def _events(**filters):
    return list(AuditEvent.objects.filter(source="portal", **filters).order_by("at", "pk"))


def test_key_changes_in_the_portal_are_audited_with_the_actor(client, crew):
    lead = crew["users"]["lead"]
    client.force_login(lead)
    response = client.post(T + "keys/new/", {"name": "audited"}, REMOTE_ADDR="10.1.2.3")
    secret = next(w for w in response.content.decode().split('"') if w.startswith("sk-gw-"))
    key = ApiKey.objects.get(name="audited")
    client.post(T + f"keys/{key.pk}/limits/", {"rpm": "30"})
    client.post(T + f"keys/{key.pk}/revoke/")

    events = _events(team_id=crew["search"].pk)
    assert {e.actor_id for e in events} == {lead.pk}
    assert any(e.object_type == "tenants.apikey" and e.action == "create" for e in events)
    assert any(e.object_type == "tenants.apikey" and e.action == "revoke" for e in events)
    assert any(e.object_type == "policies.policy" for e in events)
    assert any(e.ip == "10.1.2.3" for e in events)
    assert all(secret not in str(e.changes) for e in events)


def test_member_changes_in_the_portal_are_audited(client, crew):
    guest = crew["memberships"]["guest"]
    client.force_login(crew["users"]["owner"])
    client.post(T + f"members/{guest.pk}/role/", {"role": "member"})
    client.post(T + f"members/{guest.pk}/remove/")
    events = _events(object_type="tenants.membership", object_id=str(guest.pk))
    assert [e.actor_id for e in events] == [crew["users"]["owner"].pk] * len(events)
    assert {e.action for e in events} >= {"delete"} and len(events) == 2
