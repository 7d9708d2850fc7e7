"""The management API over a real server (uvicorn, the ASGI app as `make serve` runs it): a
lead with a personal access token creates a key, calls the gateway with it, rotates it with a
grace period, revokes the new one and finds the calls in the usage API; the audit log names
the lead and the API as the source."""

import time

import pytest
from django.conf import settings

from audit.models import AuditEvent
from billing.rollups import rollup_usage
from tenants.models import Membership
from tests.factories import UserFactory
from tests.helpers_api import token_for

from .support import MESSAGES, usage_records

CHAT = {"model": "chat-fast", "messages": MESSAGES}


@pytest.fixture(autouse=True)
def _short_local_cache(settings):
    settings.GATEWAY_KEY_CACHE_TTL_S = 0.2


def _chat(http, secret: str) -> int:
    return http.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {secret}"}
    ).status_code


# Every app, not the e2e default's few: the API reads users' groups (auth), writes audit rows
# and tokens (audit, api).
@pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)
def test_a_lead_runs_a_key_through_the_api(gateway, upstream):
    lead = UserFactory(username="api-lead")
    Membership.objects.create(user=lead, team=gateway.team, role="lead")
    api = {"authorization": f"Bearer {token_for(lead, scopes=['read', 'keys'])}"}
    base = f"/api/v1/teams/{gateway.team.slug}"
    with gateway.http() as http:
        created = http.post(f"{base}/keys/", json={"name": "svc"}, headers=api)
        assert created.status_code == 201, created.text
        key = created.json()
        assert _chat(http, key["secret"]) == 200

        rotated = http.post(
            f"{base}/keys/{key['id']}/rotate/", json={"grace_seconds": 60}, headers=api
        )
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        time.sleep(0.3)  # past the local key cache
        assert _chat(http, key["secret"]) == 200  # within its grace period
        assert _chat(http, new["secret"]) == 200

        revoked = http.post(f"{base}/keys/{new['id']}/revoke/", json={}, headers=api)
        assert revoked.status_code == 200 and revoked.json()["is_active"] is False
        time.sleep(0.3)
        assert _chat(http, new["secret"]) == 401

        # The calls, once ingested and rolled up, are in the usage API.
        assert len(usage_records()) == 3
        rollup_usage()
        usage = http.get("/api/v1/usage/", params={"group_by": "key"}, headers=api).json()
        assert usage["totals"]["requests"] == 3
        assert {row["key"] for row in usage["results"]} == {key["prefix"], new["prefix"]}

        # No answer of the API carries a secret except the create and rotate ones.
        listing = http.get(f"{base}/keys/", headers=api).text
        assert key["secret"] not in listing and new["secret"] not in listing

    events = AuditEvent.objects.filter(source="api", actor=lead)
    assert {"create", "rotate", "revoke"} <= set(events.values_list("action", flat=True))
    assert set(events.values_list("ip", flat=True)) == {"127.0.0.1"}
