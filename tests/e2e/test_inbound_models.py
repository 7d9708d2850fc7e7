"""GET /v1/models/{id}: the SDK's `models.retrieve()`, for the models this key may call."""

import openai
import pytest

from .support import assert_openai_error, usage_records


def test_sdk_retrieves_a_model_the_key_may_use(gateway, upstream):
    raw = gateway.client().models.with_raw_response.retrieve("chat-fast")
    model = raw.parse()

    assert (model.id, model.object, model.owned_by) == ("chat-fast", "model", "gateway")
    assert model.created > 0
    assert raw.headers["x-request-id"]
    assert upstream.requests == []
    assert usage_records() == []


async def test_async_sdk_retrieves_an_embedding_model(gateway):
    async with gateway.async_client() as client:
        model = await client.models.retrieve("embed-small")

    assert model.id == "embed-small"


@pytest.mark.parametrize("name", ["no-such-model", "org/no-such-model", "chat-restricted"])
def test_unknown_or_not_allowed_model_is_not_found(gateway, name):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().models.retrieve(name)

    error = assert_openai_error(caught.value.response, 404, "model_not_found")
    assert error["param"] == "model"
    assert f"'{name}'" in error["message"]


def test_model_outside_the_keys_list_is_not_found(gateway):
    secret = gateway.issue_key(allowed_models=["chat-fast"])

    assert gateway.client(key=secret).models.retrieve("chat-fast").id == "chat-fast"
    with pytest.raises(openai.NotFoundError):
        gateway.client(key=secret).models.retrieve("chat-ha")


def test_retrieving_a_model_needs_a_valid_key(gateway):
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.client(key="sk-gw-not-a-real-key").models.retrieve("chat-fast")

    assert_openai_error(caught.value.response, 401, "invalid_api_key")


def test_only_get_is_allowed_on_a_model(gateway):
    with gateway.http() as http:
        response = http.delete("/v1/models/chat-fast", headers=gateway.auth())

    assert_openai_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


# --- refusals that say why -----------------------------------------------------------------------


def _chat(gateway, model: str, key: str | None = None):
    with gateway.http() as http:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth(key))


def test_embedding_model_on_the_chat_endpoint_points_to_embeddings(gateway, upstream):
    error = assert_openai_error(_chat(gateway, "embed-small"), 404, "model_not_found")

    assert error["message"] == "'embed-small' is an embedding model; use /v1/embeddings"
    assert error["param"] == "model"
    assert upstream.requests == []


def test_chat_model_on_the_embeddings_endpoint_points_to_chat(gateway, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().embeddings.create(model="chat-fast", input="text")

    error = assert_openai_error(caught.value.response, 404, "model_not_found")
    assert error["message"] == "'chat-fast' is a chat model; use /v1/chat/completions"


def test_unknown_model_does_not_exist(gateway):
    error = assert_openai_error(_chat(gateway, "gpt-9"), 404, "model_not_found")

    assert error["message"] == "the model 'gpt-9' does not exist"


def test_model_outside_the_teams_list_names_the_team(gateway, upstream):
    # The key lists the model, but cannot widen its team's list.
    secret = gateway.issue_key(name="ci-bot", allowed_models=["chat-fast", "chat-restricted"])

    error = assert_openai_error(_chat(gateway, "chat-restricted", secret), 403)

    assert error["message"] == (
        "team 'e2e' allows models: chat-down, chat-fast, chat-ha, chat-slow, embed-small"
    )
    assert error["type"] == "permission_error"
    assert upstream.requests == []


def test_model_the_key_narrowed_away_names_the_key(gateway, upstream):
    secret = gateway.issue_key(name="ci-bot", allowed_models=["chat-fast"])

    error = assert_openai_error(_chat(gateway, "chat-ha", secret), 403, "model_not_allowed")

    assert error["message"] == "key 'ci-bot' allows models: chat-fast"
    assert upstream.requests == []
