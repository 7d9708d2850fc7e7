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
