"""What crosses the gateway: credentials and headers upstream, cookies never downstream."""

import pytest
from django.conf import settings

from .support import MESSAGES, PROVIDER_SECRET

# What httpx itself puts on every outbound request; everything else must be deliberate.
_TRANSPORT_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent"}
_GATEWAY_HEADERS = {"content-type", "content-length", "authorization", "x-request-id"}


def test_upstream_receives_the_provider_credential_not_the_clients_key(gateway, upstream):
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="chat-fast", messages=MESSAGES
    )

    [sent] = upstream.received("/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_SECRET}"
    assert gateway.key not in str(sent.headers)
    assert gateway.key not in str(sent.body)
    assert sent.headers["x-request-id"] == raw.headers["x-request-id"]


def test_only_allowlisted_client_headers_reach_the_upstream(gateway, upstream):
    client = gateway.client(
        default_headers={
            "openai-beta": "assistants=v2",
            "openai-organization": "org-client",
            "x-custom-tracking": "should-not-leak",
            "cookie": "sessionid=client-session",
            "x-forwarded-for": "203.0.113.7",
        }
    )
    client.chat.completions.create(model="chat-fast", messages=MESSAGES)

    [sent] = upstream.received("/v1/chat/completions")
    assert set(sent.headers) <= _TRANSPORT_HEADERS | _GATEWAY_HEADERS | {"openai-beta"}
    # The allowlist (GATEWAY_FORWARD_HEADERS defaults to openai-beta) is forwarded verbatim.
    assert sent.headers["openai-beta"] == "assistants=v2"
    # The SDK's own identification stays with the gateway too.
    assert not sent.headers["user-agent"].startswith("OpenAI/")
    assert not any(name.startswith("x-stainless") for name in sent.headers)


def test_allowlist_setting_controls_which_headers_are_forwarded(gateway, upstream, settings):
    settings.GATEWAY_FORWARD_HEADERS = ["x-trace-id"]
    client = gateway.client(default_headers={"x-trace-id": "t-1", "openai-beta": "assistants=v2"})
    client.chat.completions.create(model="chat-fast", messages=MESSAGES)

    [sent] = upstream.received("/v1/chat/completions")
    assert sent.headers["x-trace-id"] == "t-1"
    assert "openai-beta" not in sent.headers


# Every installed app: the dashboard request below needs auth and sessions.
@pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)
def test_proxy_responses_carry_no_session_or_csrf_artefacts(gateway):
    with gateway.http() as http:
        responses = [
            http.post(
                "/v1/chat/completions",
                json={"model": "chat-fast", "messages": MESSAGES},
                headers=gateway.auth(),
            ),
            http.post(
                "/v1/chat/completions",
                json={"model": "chat-fast", "messages": MESSAGES, "stream": True},
                headers=gateway.auth(),
            ),
            http.get("/v1/models", headers=gateway.auth()),
            http.post("/v1/chat/completions", json={}, headers={"cookie": "sessionid=x"}),
            http.get("/v1/no-such-endpoint"),
        ]
        # The dashboard, served by the same app, does run the session and CSRF middleware:
        # the contrast shows the /v1 handler is the one without them.
        dashboard = http.get("/admin/login/")

    for response in responses:
        assert response.headers["x-request-id"]
        assert "set-cookie" not in response.headers
        assert "cookie" not in response.headers.get("vary", "").lower()
        assert "x-frame-options" not in response.headers
    assert dashboard.status_code == 200
    assert "csrftoken" in dashboard.headers["set-cookie"]
    assert "cookie" in dashboard.headers["vary"].lower()
