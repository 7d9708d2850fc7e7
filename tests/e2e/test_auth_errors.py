"""Who may call: keys, their states, the team's models, and a state store that is down."""

from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from infra.state import get_state
from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.fake_upstream import REPLY

from .support import MESSAGES, assert_no_usage_records, assert_openai_error, only_usage_record

CHAT = {"model": "chat-fast", "messages": MESSAGES}


def _post_chat(gateway, headers: dict[str, str], body: dict = CHAT):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=headers)


def _assert_unauthenticated(response, upstream, code: str = "invalid_api_key") -> dict:
    error = assert_openai_error(response, 401, code)
    assert error["type"] == "authentication_error"
    # Nobody to bill and nothing sent on: an unauthenticated request stops at the door.
    assert upstream.requests == []
    assert_no_usage_records()
    return error


def test_missing_key_is_rejected(gateway, upstream):
    error = _assert_unauthenticated(_post_chat(gateway, {}), upstream)
    assert "missing API key" in error["message"]


def test_non_bearer_authorization_is_rejected_as_missing_key(gateway, upstream):
    response = _post_chat(gateway, {"authorization": f"Basic {gateway.key}"})
    error = _assert_unauthenticated(response, upstream)
    assert "missing API key" in error["message"]


def test_invalid_key_is_rejected(gateway, upstream):
    response = _post_chat(gateway, gateway.auth("sk-gw-not-a-real-key"))
    error = _assert_unauthenticated(response, upstream)
    assert error["message"] == "invalid API key"


def test_invalid_key_raises_the_sdks_authentication_error(gateway, upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.client(key="sk-gw-not-a-real-key").chat.completions.create(**CHAT)

    _assert_unauthenticated(caught.value.response, upstream)
    assert caught.value.code == "invalid_api_key"


def test_revoked_key_is_rejected(gateway, upstream):
    api_key_revoke(api_key=gateway.api_key)

    _assert_unauthenticated(_post_chat(gateway, gateway.auth()), upstream, "revoked_api_key")


def test_keys_of_an_inactive_team_are_rejected(gateway, upstream):
    gateway.team.is_active = False
    gateway.team.save(update_fields=["is_active"])

    _assert_unauthenticated(_post_chat(gateway, gateway.auth()), upstream, "revoked_api_key")


def test_expired_key_is_rejected(gateway, upstream):
    secret = gateway.issue_key(expires_in_days=1)
    ApiKey.objects.filter(name="extra").update(expires_at=timezone.now() - timedelta(minutes=1))

    _assert_unauthenticated(_post_chat(gateway, gateway.auth(secret)), upstream, "expired_api_key")


def test_key_that_has_not_expired_yet_is_accepted(gateway):
    secret = gateway.issue_key(expires_in_days=1)

    completion = gateway.client(key=secret).chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == REPLY


def test_azure_style_api_key_header_is_accepted(gateway, upstream):
    response = _post_chat(gateway, {"api-key": gateway.key})

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    record = only_usage_record(response.headers["x-request-id"])
    assert record.api_key_id == gateway.api_key.pk
    # The client's api-key header is a credential, never forwarded.
    [sent] = upstream.received("/v1/chat/completions")
    assert "api-key" not in sent.headers


def test_api_key_header_is_used_when_authorization_carries_no_bearer_token(gateway, upstream):
    response = _post_chat(gateway, {"authorization": "Bearer", "api-key": gateway.key})

    assert response.status_code == 200
    assert only_usage_record(response.headers["x-request-id"]).api_key_id == gateway.api_key.pk


def test_model_not_allowed_for_the_team_is_forbidden(gateway, upstream):
    response = _post_chat(gateway, gateway.auth(), {**CHAT, "model": "chat-restricted"})

    error = assert_openai_error(response, 403, "model_not_allowed")
    assert error["type"] == "permission_error"
    assert error["param"] == "model"
    assert upstream.requests == []
    # Authenticated, so it is logged (and attributed) even though nothing was called.
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (403, "model_not_allowed")
    assert record.team_id == gateway.team.pk
    assert record.cost_usd == 0


def test_model_outside_the_keys_narrowed_list_is_forbidden(gateway, upstream):
    secret = gateway.issue_key(allowed_models=["chat-fast"])

    with pytest.raises(openai.PermissionDeniedError) as caught:
        gateway.client(key=secret).chat.completions.create(model="chat-ha", messages=MESSAGES)

    assert_openai_error(caught.value.response, 403, "model_not_allowed")
    assert upstream.requests == []


def test_unknown_model_is_not_found(gateway, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().chat.completions.create(model="no-such-model", messages=MESSAGES)

    response = caught.value.response
    error = assert_openai_error(response, 404, "model_not_found")
    assert error["param"] == "model"
    assert upstream.requests == []
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (404, "model_not_found")
    assert record.requested_model == "no-such-model"


@pytest.fixture
def state_store_down(gateway, settings, closed_port):
    # get_state() is cached per process; the gateway thread shares this process, so pointing
    # the setting at a closed port and dropping the cache takes the store away from it too.
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    get_state.cache_clear()
    yield
    get_state.cache_clear()  # the next get_state() builds a client for the restored URL


def test_state_store_down_is_unavailable_not_unauthorized(gateway, upstream, state_store_down):
    response = _post_chat(gateway, gateway.auth())

    # A valid key must not look invalid because a dependency is down.
    error = assert_openai_error(response, 503, "dependency_unavailable")
    assert error["type"] == "service_unavailable"
    assert upstream.requests == []
