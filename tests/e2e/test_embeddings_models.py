"""Embeddings and the model list through the official SDK."""

from decimal import Decimal

import openai
import pytest

from tests.fake_upstream import EMBEDDING_DIMS, EMBEDDING_TOKENS_PER_INPUT

from .support import TEAM_MODELS, assert_no_usage_records, expected_cost, only_usage_record


def test_embeddings_come_back_and_are_billed(gateway, upstream):
    raw = gateway.client().embeddings.with_raw_response.create(
        model="embed-small", input=["first text", "second text"]
    )
    result = raw.parse()

    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == EMBEDDING_DIMS for item in result.data)
    tokens = 2 * EMBEDDING_TOKENS_PER_INPUT
    assert result.usage.prompt_tokens == tokens
    assert raw.headers["x-gateway-deployment"] == "fake-primary/fake-embed"
    cost = expected_cost("fake-embed", tokens, 0)
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == cost

    record = only_usage_record(raw.headers["x-request-id"])
    assert record.endpoint == "embeddings"
    assert record.requested_model == "embed-small"
    assert (record.input_tokens, record.output_tokens) == (tokens, 0)
    assert record.cost_usd == cost
    assert (record.status_code, record.stream) == (200, False)
    [sent] = upstream.received("/v1/embeddings")
    assert sent.body["model"] == "fake-embed"
    assert sent.body["input"] == ["first text", "second text"]


async def test_async_embeddings_come_back(gateway):
    async with gateway.async_client() as client:
        result = await client.embeddings.create(model="embed-small", input="one text")

    assert len(result.data) == 1
    assert len(result.data[0].embedding) == EMBEDDING_DIMS


def test_chat_model_is_not_found_on_the_embeddings_endpoint(gateway, upstream):
    # Models are looked up per mode: a chat model has no embedding deployment.
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().embeddings.create(model="chat-fast", input="text")

    assert caught.value.code == "model_not_found"
    assert upstream.requests == []


def test_model_list_shows_only_the_teams_models(gateway, upstream):
    raw = gateway.client().models.with_raw_response.list()
    models = list(raw.parse())

    assert [m.id for m in models] == TEAM_MODELS
    assert "chat-restricted" not in {m.id for m in models}
    assert all(m.object == "model" and m.owned_by == "gateway" for m in models)
    assert raw.headers["x-request-id"]
    # Served from the routing table: the upstream's own list is never consulted.
    assert upstream.requests == []
    # Listing models is not a billable call.
    assert_no_usage_records()


def test_model_list_shows_only_the_keys_models(gateway):
    secret = gateway.issue_key(allowed_models=["chat-fast", "chat-restricted"])

    models = gateway.client(key=secret).models.list()

    # The key narrows the team's list and cannot widen it.
    assert [m.id for m in models] == ["chat-fast"]


def test_model_list_needs_a_valid_key(gateway):
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.client(key="sk-gw-not-a-real-key").models.list()

    assert caught.value.status_code == 401
    assert caught.value.response.headers["x-request-id"]
