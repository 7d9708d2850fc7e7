"""The Azure OpenAI-style paths, driven by the official `AzureOpenAI` client, unmodified.

Same pipeline as /v1: the same usage row (endpoint and all), the same errors in the same shape.
"""

import json
import logging

import openai
import pytest

from gateway.config import config_load
from tests.fake_upstream import (
    COMPLETION_TOKENS,
    EMBEDDING_DIMS,
    EMBEDDING_TOKENS_PER_INPUT,
    PROMPT_TOKENS,
    REPLY,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
)

from .support import (
    MESSAGES,
    PROVIDER_SECRET,
    TEAM_MODELS,
    assert_no_usage_records,
    assert_openai_error,
    async_wait_for_usage_record,
    expected_cost,
    only_usage_record,
    wait_for_usage_record,
    wait_for_usage_records,
)

API_VERSION = "2024-10-21"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _azure(gateway, **kwargs) -> openai.AzureOpenAI:
    # No SDK retries: every call must be exactly one gateway request (and one usage row).
    if "azure_ad_token" not in kwargs:
        kwargs.setdefault("api_key", gateway.key)
    kwargs.setdefault("api_version", API_VERSION)
    return openai.AzureOpenAI(azure_endpoint=gateway.url, max_retries=0, timeout=15, **kwargs)


def _assert_billed(record, gateway, *, endpoint="chat.completions", model="chat-fast") -> None:
    assert record.team_id == gateway.team.pk
    assert record.api_key_id == gateway.api_key.pk
    assert record.endpoint == endpoint
    assert record.requested_model == model
    assert record.status_code == 200
    assert record.error_type == ""
    assert record.usage_estimated is False


# --- chat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["2024-10-21", "2025-01-01-preview"])
def test_azure_client_chat_completion_is_served_and_billed_as_on_v1(gateway, upstream, api_version):
    raw = _azure(gateway, api_version=api_version).chat.completions.with_raw_response.create(
        model="chat-fast", messages=MESSAGES
    )
    completion = raw.parse()

    assert raw.http_request.url.path == "/openai/deployments/chat-fast/chat/completions"
    assert raw.http_request.url.params["api-version"] == api_version
    assert completion.choices[0].message.content == REPLY
    assert raw.headers["x-gateway-deployment"] == "fake-primary/fake-chat-fast"
    request_id = raw.headers["x-request-id"]
    record = only_usage_record(request_id)
    _assert_billed(record, gateway)
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert record.cost_usd == expected_cost("fake-chat-fast", PROMPT_TOKENS, COMPLETION_TOKENS)
    assert record.stream is False
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-chat-fast"
    assert sent.body["messages"] == MESSAGES
    assert sent.headers["x-request-id"] == request_id
    # The gateway's key went no further; the provider got its own credential.
    assert "api-key" not in sent.headers
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_SECRET}"


def test_the_model_in_the_path_wins_over_the_body(gateway, upstream):
    # With azure_deployment set, the client puts that name in the URL and the caller's `model`
    # (often the underlying model's name) in the body; Azure goes by the URL, and so do we.
    client = _azure(gateway, azure_deployment="chat-fast")
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)

    assert raw.parse().choices[0].message.content == REPLY
    record = only_usage_record(raw.headers["x-request-id"])
    _assert_billed(record, gateway)
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-chat-fast"


def test_an_entra_id_style_bearer_token_authenticates_as_the_key(gateway):
    client = _azure(gateway, azure_ad_token=gateway.key)
    raw = client.chat.completions.with_raw_response.create(model="chat-fast", messages=MESSAGES)

    assert raw.http_request.headers["authorization"] == f"Bearer {gateway.key}"
    assert "api-key" not in raw.http_request.headers
    _assert_billed(only_usage_record(raw.headers["x-request-id"]), gateway)


def test_stream_with_include_usage_ends_with_the_usage_chunk(gateway):
    raw = _azure(gateway).chat.completions.with_raw_response.create(
        model="chat-fast",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())

    assert raw.headers["content-type"].startswith("text/event-stream")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    record = wait_for_usage_record(raw.headers["x-request-id"])
    _assert_billed(record, gateway)
    assert record.stream is True
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


def test_stream_without_include_usage_is_still_billed_from_upstream_usage(gateway):
    raw = _azure(gateway).chat.completions.with_raw_response.create(
        model="chat-fast", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())

    assert all(c.choices for c in chunks)  # no usage-only chunk the client did not ask for
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert record.stream is True
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


async def test_async_azure_client_streams_and_is_billed(gateway):
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=gateway.url,
        api_key=gateway.key,
        api_version=API_VERSION,
        max_retries=0,
        timeout=15,
    )
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat-fast", messages=MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in raw.parse()]

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    record = await async_wait_for_usage_record(raw.headers["x-request-id"])
    _assert_billed(record, gateway)
    assert record.stream is True


# --- tools ---------------------------------------------------------------------------------------


def test_tool_call_round_trip(gateway, upstream):
    client = _azure(gateway)
    first = client.chat.completions.create(
        model="chat-fast", messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    [call] = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name) == (TOOL_CALL_ID, "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    followup = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    second = client.chat.completions.create(
        model="chat-fast", messages=followup, tools=[WEATHER_TOOL]
    )

    assert second.choices[0].message.content == REPLY
    sent = upstream.received("/v1/chat/completions")
    assert sent[1].body["messages"][-1]["tool_call_id"] == TOOL_CALL_ID
    assert sent[1].body["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    records = wait_for_usage_records(2)
    assert [r.status_code for r in records] == [200, 200]


def test_streamed_tool_call_arguments_arrive_as_deltas(gateway):
    stream = _azure(gateway).chat.completions.create(
        model="chat-fast",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    chunks = list(stream)

    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert calls[0][0].id == TOOL_CALL_ID
    assert calls[0][0].function.name == "get_weather"
    assert len(calls) > 2  # the arguments came in pieces
    assert "".join(c[0].function.arguments or "" for c in calls) == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    [record] = wait_for_usage_records(1)
    assert record.stream is True


# --- embeddings and models -----------------------------------------------------------------------


def test_azure_client_embeddings_are_served_and_billed(gateway, upstream):
    raw = _azure(gateway).embeddings.with_raw_response.create(
        model="embed-small", input=["one", "two"]
    )
    result = raw.parse()

    assert raw.http_request.url.path == "/openai/deployments/embed-small/embeddings"
    assert [len(item.embedding) for item in result.data] == [EMBEDDING_DIMS, EMBEDDING_DIMS]
    record = only_usage_record(raw.headers["x-request-id"])
    _assert_billed(record, gateway, endpoint="embeddings", model="embed-small")
    assert record.input_tokens == 2 * EMBEDDING_TOKENS_PER_INPUT
    [sent] = upstream.received("/v1/embeddings")
    assert sent.body["model"] == "fake-embed"


def test_azure_client_lists_and_retrieves_the_keys_models(gateway, upstream):
    client = _azure(gateway)
    raw = client.models.with_raw_response.list()

    assert raw.http_request.url.path == "/openai/models"
    assert [m.id for m in raw.parse()] == TEAM_MODELS
    assert client.models.retrieve("embed-small").id == "embed-small"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("chat-restricted")
    assert upstream.requests == []
    assert_no_usage_records()


@pytest.fixture
def slashed_model(gateway, upstream):
    """A public model name with a slash, as many are ("meta-llama/Llama-3.1-8B")."""
    config_load(
        text=f"""
providers:
  - {{name: fake-primary, kind: openai_compatible, api_base: "{upstream.base_url}",
      api_key: "{PROVIDER_SECRET}"}}
models:
  - name: acme/chat
    deployments:
      - {{provider: fake-primary, model: fake-acme-chat}}
teams:
  - slug: e2e
    allowed_models: ["*"]
"""
    )
    return "acme/chat"


def test_a_model_name_with_a_slash_is_served(gateway, upstream, slashed_model):
    raw = _azure(gateway).chat.completions.with_raw_response.create(
        model=slashed_model, messages=MESSAGES
    )

    assert raw.parse().choices[0].message.content == REPLY
    assert raw.http_request.url.raw_path.startswith(b"/openai/deployments/acme%2Fchat/")
    assert only_usage_record(raw.headers["x-request-id"]).requested_model == slashed_model
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-acme-chat"


# --- errors --------------------------------------------------------------------------------------


def test_unknown_model_raises_not_found_and_is_logged(gateway, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        _azure(gateway).chat.completions.create(model="no-such-model", messages=MESSAGES)

    error = assert_openai_error(caught.value.response, 404, "model_not_found")
    assert error["param"] == "model"
    assert "'no-such-model'" in error["message"]
    record = only_usage_record(error["request_id"])
    assert (record.status_code, record.requested_model) == (404, "no-such-model")
    assert upstream.requests == []


def test_bad_key_raises_authentication_error_without_a_usage_row(gateway, upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        _azure(gateway, api_key="sk-gw-not-a-real-key").chat.completions.create(
            model="chat-fast", messages=MESSAGES
        )

    assert_openai_error(caught.value.response, 401, "invalid_api_key")
    assert "sk-gw-not-a-real-key" not in caught.value.response.text
    assert upstream.requests == []
    assert_no_usage_records()


def test_an_invalid_body_is_refused_as_on_v1(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        _azure(gateway).chat.completions.create(model="chat-fast", messages=[])

    error = assert_openai_error(caught.value.response, 400)
    assert error["param"] == "messages"
    assert only_usage_record(error["request_id"]).status_code == 400
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "missing_api_version"),
        ("?api_version=2024-10-21", "missing_api_version"),
        ("?api-version=", "invalid_api_version"),
        ("?api-version=latest", "invalid_api_version"),
        ("?api-version=2024-10-21&api-version=2025-01-01-preview", "invalid_api_version"),
    ],
)
@pytest.mark.parametrize("endpoint", ["chat/completions", "embeddings"])
def test_a_missing_or_malformed_api_version_is_refused_and_logged(
    gateway, upstream, caplog, endpoint, query, code
):
    caplog.set_level(logging.INFO, logger="gateway.refusals")
    body = {"model": "chat-fast", "messages": MESSAGES, "input": "hi"}
    with gateway.http() as http:
        response = http.post(
            f"/openai/deployments/chat-fast/{endpoint}{query}",
            json=body,
            headers={"api-key": gateway.key},
        )

    error = assert_openai_error(response, 400, code)
    assert error["param"] == "api-version"
    assert "api-version" in error["message"]
    assert upstream.requests == []
    # Refused as part of the URL, before authentication: a refusal line, not a usage row.
    assert_no_usage_records()
    [logged] = [r for r in caplog.records if r.name == "gateway.refusals"]
    assert (logged.request_id, logged.reason) == (error["request_id"], code)
    assert logged.key_prefix == gateway.api_key.prefix


def test_listing_models_also_needs_an_api_version(gateway):
    with gateway.http() as http:
        response = http.get("/openai/models", headers={"api-key": gateway.key})

    assert_openai_error(response, 400, "missing_api_version")


@pytest.mark.parametrize(
    "path",
    [
        "/openai/deployments/chat-fast/completions",
        "/openai/deployments/chat-fast/images/generations",
        "/openai/deployments/chat-fast",
        "/openai/unknown",
    ],
)
def test_unknown_paths_under_openai_are_an_openai_shaped_404(gateway, path):
    with gateway.http() as http:
        response = http.post(f"{path}?api-version={API_VERSION}", headers=gateway.auth())

    error = assert_openai_error(response, 404, "unknown_url")
    assert path in error["message"]


def test_only_post_is_allowed_on_a_deployment_path(gateway):
    with gateway.http() as http:
        response = http.get(
            f"/openai/deployments/chat-fast/chat/completions?api-version={API_VERSION}",
            headers=gateway.auth(),
        )

    assert_openai_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
