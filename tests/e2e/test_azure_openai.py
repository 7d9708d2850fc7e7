"""The azure_openai adapter end to end: the official openai SDK talks to the gateway, the
gateway to a fake Azure OpenAI resource (deployment URL, api-version, api-key header), and the
Azure key never comes back out: not in a response, a header, a log line or a usage row."""

import json
import logging

import openai
import pytest

from billing.models import UsageRecord
from gateway.config import config_load
from tests.fake_upstream import (
    AZURE_API_VERSION,
    COMPLETION_TOKENS,
    EMBEDDING_DIMS,
    PROMPT_TOKENS,
    REPLY,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    FakeUpstream,
)

from .support import MESSAGES, TEAM, assert_openai_error, only_usage_record, usage_records

# A canary: the Azure key, long and unmistakable, that must never be seen again.
AZURE_KEY = "azure-canary-3f9d0c5e7a1b4d2f8e6c0a9b"
CHAT_DEPLOYMENT = "gpt-4o-mini-eu"
EMBED_DEPLOYMENT = "text-embedding-3-small-eu"
CHAT_PATH = f"/openai/deployments/{CHAT_DEPLOYMENT}/chat/completions"
EMBED_PATH = f"/openai/deployments/{EMBED_DEPLOYMENT}/embeddings"

AZURE_CONFIG = """
providers:
  - name: azure-eu
    kind: azure_openai
    api_base: "{endpoint}"
    credentials: {{api_key: "{key}", api_version: "{version}"}}
models:
  - name: azure-chat
    deployments:
      - {{provider: azure-eu, model: {chat}, input_cost_per_mtok: 0.15, output_cost_per_mtok: 0.6}}
  - name: azure-embed
    mode: embedding
    deployments:
      - {{provider: azure-eu, model: {embed}, input_cost_per_mtok: 0.02}}
teams:
  - slug: {team}
    allowed_models: [azure-chat, azure-embed]
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="session")
def azure_upstream_server():
    fake = FakeUpstream(api_key=AZURE_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def azure_upstream(azure_upstream_server):
    azure_upstream_server.reset()
    yield azure_upstream_server
    azure_upstream_server.reset()
    azure_upstream_server.api_key = AZURE_KEY
    azure_upstream_server.azure_api_version = AZURE_API_VERSION


@pytest.fixture
def azure(gateway, azure_upstream):
    """The e2e gateway, plus an Azure provider at the fake and the team allowed its models."""
    config_load(
        text=AZURE_CONFIG.format(
            endpoint=azure_upstream.azure_endpoint,
            key=AZURE_KEY,
            version=AZURE_API_VERSION,
            chat=CHAT_DEPLOYMENT,
            embed=EMBED_DEPLOYMENT,
            team=TEAM,
        )
    )
    return gateway


def _assert_sent_the_azure_way(request) -> None:
    assert request.query == {"api-version": AZURE_API_VERSION}
    assert request.headers["api-key"] == AZURE_KEY
    # The key goes only where Azure reads it; an Authorization header would be an Entra token.
    assert "authorization" not in request.headers


def test_completion_goes_to_the_deployment_url_with_api_version_and_api_key(azure, azure_upstream):
    raw = azure.client().chat.completions.with_raw_response.create(
        model="azure-chat", messages=MESSAGES
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == REPLY
    assert raw.headers["x-gateway-deployment"] == f"azure-eu/{CHAT_DEPLOYMENT}"
    [sent] = azure_upstream.received(CHAT_PATH)
    _assert_sent_the_azure_way(sent)
    assert sent.body["messages"] == MESSAGES
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.provider_name, record.upstream_model) == ("azure-eu", CHAT_DEPLOYMENT)
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert record.usage_estimated is False


def test_stream_is_relayed_and_billed_from_the_usage_azure_reports(azure, azure_upstream):
    raw = azure.client().chat.completions.with_raw_response.create(
        model="azure-chat", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    [sent] = azure_upstream.received(CHAT_PATH)
    _assert_sent_the_azure_way(sent)
    assert sent.body["stream_options"] == {"include_usage": True}
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert (record.stream, record.usage_estimated) == (True, False)


def test_streamed_tool_call_arrives_whole_through_the_sdk(azure, azure_upstream):
    stream = azure.client().chat.completions.create(
        model="azure-chat",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish

    assert calls == {0: {"id": TOOL_CALL_ID, "name": "get_weather", "arguments": TOOL_ARGUMENTS}}
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert finish == "tool_calls"
    [sent] = azure_upstream.received(CHAT_PATH)
    assert sent.body["tools"] == [WEATHER_TOOL]


def test_tool_call_without_streaming(azure):
    completion = azure.client().chat.completions.create(
        model="azure-chat",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    [call] = completion.choices[0].message.tool_calls
    assert (call.id, call.function.name) == (TOOL_CALL_ID, "get_weather")
    assert call.function.arguments == TOOL_ARGUMENTS
    assert completion.choices[0].finish_reason == "tool_calls"


def test_embeddings_go_to_the_embedding_deployment(azure, azure_upstream):
    raw = azure.client().embeddings.with_raw_response.create(
        model="azure-embed", input=["one", "two"]
    )
    result = raw.parse()

    assert [len(item.embedding) for item in result.data] == [EMBEDDING_DIMS, EMBEDDING_DIMS]
    [sent] = azure_upstream.received(EMBED_PATH)
    _assert_sent_the_azure_way(sent)
    assert sent.body["input"] == ["one", "two"]
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.endpoint, record.upstream_model) == ("embeddings", EMBED_DEPLOYMENT)


def test_rate_limit_is_a_429_with_azures_retry_after(azure, azure_upstream):
    azure_upstream.fail(429, headers={"retry-after": "7"})

    with pytest.raises(openai.RateLimitError) as caught:
        azure.client().chat.completions.create(model="azure-chat", messages=MESSAGES)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "7"


def test_a_key_azure_refuses_is_a_502_naming_no_key(azure, azure_upstream):
    azure_upstream.api_key = "another-key-the-resource-expects"

    with pytest.raises(openai.APIStatusError) as caught:
        azure.client().chat.completions.create(model="azure-chat", messages=MESSAGES)

    error = assert_openai_error(caught.value.response, 502, "upstream_error")
    assert "credentials" in error["message"]


def test_an_api_version_azure_does_not_serve_is_a_502(azure, azure_upstream):
    azure_upstream.azure_api_version = "2025-01-01"

    with pytest.raises(openai.APIStatusError) as caught:
        azure.client().chat.completions.create(model="azure-chat", messages=MESSAGES)

    assert_openai_error(caught.value.response, 502, "upstream_error")
    [sent] = azure_upstream.received(CHAT_PATH)
    assert sent.query == {"api-version": AZURE_API_VERSION}


# --- The canary ----------------------------------------------------------------------------------


def test_the_azure_key_appears_in_no_response_header_log_line_or_usage_row(
    azure, azure_upstream, caplog
):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def keep(response) -> None:
        seen.append(response.text)
        seen.extend(f"{name}: {value}" for name, value in response.headers.items())

    with azure.http() as http:
        auth = azure.auth()
        chat = {"model": "azure-chat", "messages": MESSAGES}
        # Answers that work, streamed and not, and embeddings.
        keep(http.post("/v1/chat/completions", json=chat, headers=auth))
        keep(http.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth))
        embed = {"model": "azure-embed", "input": "text"}
        keep(http.post("/v1/embeddings", json=embed, headers=auth))
        # A careless upstream that repeats the key in an error the client is shown...
        azure_upstream.fail(400, param="messages", echo_header="api-key", times=1)
        echoed = http.post("/v1/chat/completions", json=chat, headers=auth)
        assert echoed.status_code == 400
        assert "[REDACTED]" in echoed.json()["error"]["message"]
        keep(echoed)
        # ...in a rate limit, in a server error, in an error event inside a stream...
        # (Without Retry-After: one with it would cool the deployment, and the next request
        # would be answered by the gateway without reaching the upstream.)
        azure_upstream.fail(429, echo_header="api-key", times=1)
        keep(http.post("/v1/chat/completions", json=chat, headers=auth))
        azure_upstream.fail(500, echo_header="api-key", times=1)
        keep(http.post("/v1/chat/completions", json=chat, headers=auth))
        event = {"error": {"message": f"key {AZURE_KEY} is over quota", "code": "quota"}}
        azure_upstream.respond_raw(
            b"data: " + json.dumps(event).encode() + b"\n\n",
            content_type="text/event-stream",
            times=1,
        )
        streamed = http.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth)
        assert "[REDACTED] is over quota" in streamed.text
        keep(streamed)
        # ...and a key the resource refuses.
        azure_upstream.api_key = "another-key-the-resource-expects"
        keep(http.post("/v1/chat/completions", json=chat, headers=auth))

    assert all(AZURE_KEY not in text for text in seen)
    rows = usage_records()
    assert len(rows) == 8
    assert all(AZURE_KEY not in str(value) for row in rows for value in vars(row).values())
    assert all(
        AZURE_KEY not in str(value)
        for row in UsageRecord.objects.values()
        for value in row.values()
    )
    # Failed attempts were logged (by deployment), and nothing logged the key.
    assert any(r.name == "gateway.proxy" and "azure-eu" in r.getMessage() for r in caplog.records)
    assert AZURE_KEY not in caplog.text
    assert all(AZURE_KEY not in str(vars(record)) for record in caplog.records)
    # The key did go where it belongs, every time.
    assert {r.headers.get("api-key") for r in azure_upstream.requests} == {AZURE_KEY}


# --- The fake itself, checked against the SDK's own Azure client ---------------------------------


@pytest.fixture
def azure_client(azure_upstream):
    return openai.AzureOpenAI(
        azure_endpoint=azure_upstream.azure_endpoint,
        api_key=AZURE_KEY,
        api_version=AZURE_API_VERSION,
        max_retries=0,
    )


def test_sdks_azure_client_gets_answers_from_the_fake_at_the_paths_the_adapter_uses(
    azure_client, azure_upstream
):
    completion = azure_client.chat.completions.create(model=CHAT_DEPLOYMENT, messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY
    stream = azure_client.chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    arguments = "".join(
        call.function.arguments or ""
        for chunk in stream
        for call in (chunk.choices[0].delta.tool_calls or [] if chunk.choices else [])
    )
    assert arguments == TOOL_ARGUMENTS
    embeddings = azure_client.embeddings.create(model=EMBED_DEPLOYMENT, input="text")
    assert len(embeddings.data[0].embedding) == EMBEDDING_DIMS

    paths = [r.path for r in azure_upstream.requests]
    assert paths == [CHAT_PATH, CHAT_PATH, EMBED_PATH]
    for request in azure_upstream.requests:
        _assert_sent_the_azure_way(request)


def test_fake_refuses_a_wrong_key_and_an_unserved_api_version_as_azure_does(
    azure_client, azure_upstream
):
    with pytest.raises(openai.AuthenticationError) as caught:
        azure_client.with_options(api_key="wrong").chat.completions.create(
            model=CHAT_DEPLOYMENT, messages=MESSAGES
        )
    assert caught.value.response.json()["error"]["code"] == "401"

    old = openai.AzureOpenAI(
        azure_endpoint=azure_upstream.azure_endpoint,
        api_key=AZURE_KEY,
        api_version="2022-12-01",
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError) as caught:
        old.chat.completions.create(model=CHAT_DEPLOYMENT, messages=MESSAGES)
    assert caught.value.response.json() == {
        "error": {"code": "404", "message": "Resource not found"}
    }
