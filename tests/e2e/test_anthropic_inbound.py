"""The official `anthropic` SDK against /v1/messages: served by an OpenAI-style upstream (the
request, answer and stream translated) and by an Anthropic upstream (passed through untouched),
with Anthropic's error shape, count_tokens, and one usage row per request."""

import json

import anthropic
import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team
from tests.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, TOOL_ARGUMENTS
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .support import TEAM, only_usage_record, wait_for_usage_records

pytest_plugins = ("tests.fakes.fixtures",)

CONFIG = """
providers:
  - {{name: claude, kind: anthropic, api_base: "{base}", api_key: "{key}"}}
models:
  - name: sonnet
    deployments:
      - {{provider: claude, model: claude-sonnet-fake,
         input_cost_per_mtok: 3, output_cost_per_mtok: 15}}
"""

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture
def client(gateway, fake_anthropic):
    config_load(text=CONFIG.format(base=fake_anthropic.url, key=ANTHROPIC_KEY))
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return _client(gateway, gateway.key)


def _client(gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=15)


def _request_id(raw) -> str:
    return raw.headers["x-request-id"]


# --- an OpenAI-style upstream: translated -----------------------------------------------------


def test_a_message_is_answered_by_an_openai_upstream(gateway, upstream, client):
    raw = client.messages.with_raw_response.create(
        model="chat-fast", max_tokens=100, system="Be brief.", messages=HELLO
    )
    message = raw.parse()

    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == REPLY
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-chat-fast"
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.body["max_tokens"] == 100
    record = only_usage_record(_request_id(raw))
    assert record.endpoint == "messages"
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert (record.status_code, record.provider_name) == (200, "fake-primary")


def test_a_message_stream_from_an_openai_upstream(gateway, upstream, client):
    with client.messages.stream(model="chat-fast", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]

    assert text == REPLY
    assert final.content[0].text == REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == COMPLETION_TOKENS
    record = only_usage_record(request_id)
    assert (record.endpoint, record.stream, record.usage_estimated) == ("messages", True, False)
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


def test_tool_use_through_an_openai_upstream(gateway, upstream, client):
    message = client.messages.create(
        model="chat-fast", max_tokens=100, messages=HELLO, tools=[WEATHER_TOOL]
    )

    assert message.stop_reason == "tool_use"
    [tool_use] = [b for b in message.content if b.type == "tool_use"]
    assert tool_use.name == "get_weather"
    assert tool_use.input == json.loads(TOOL_ARGUMENTS)
    sent = upstream.received("/v1/chat/completions")[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    with client.messages.stream(
        model="chat-fast", max_tokens=100, messages=HELLO, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()
    [streamed] = [b for b in final.content if b.type == "tool_use"]
    assert (streamed.name, streamed.input) == ("get_weather", json.loads(TOOL_ARGUMENTS))


def test_count_tokens_is_estimated_for_an_openai_upstream(gateway, upstream, client):
    raw = client.messages.with_raw_response.count_tokens(
        model="chat-fast", messages=[{"role": "user", "content": "one two three four " * 10}]
    )

    assert raw.parse().input_tokens > 0
    assert raw.headers["x-gateway-token-count"] == "estimated"
    assert upstream.received("/v1/chat/completions") == []


# --- an Anthropic upstream: passed through --------------------------------------------------------


def test_a_message_is_passed_through_to_an_anthropic_upstream_untouched(
    gateway, fake_anthropic, client
):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Say hello.", "cache_control": {"type": "ephemeral"}}
            ],
        }
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    raw = client.messages.with_raw_response.create(
        model="sonnet", max_tokens=2048, messages=messages, thinking=thinking
    )
    message = raw.parse()

    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "Echo: Say hello."
    sent = fake_anthropic.last.body
    assert sent["model"] == "claude-sonnet-fake"
    assert sent["messages"] == messages  # cache_control kept
    assert sent["thinking"] == thinking
    assert "x-gateway-dropped-params" not in raw.headers
    record = only_usage_record(_request_id(raw))
    assert record.endpoint == "messages"
    # Two words, written to the cache: counted in the input as OpenAI counts.
    usage = message.usage
    assert usage.cache_creation_input_tokens == 2
    assert record.input_tokens == usage.input_tokens + 2
    assert record.output_tokens == usage.output_tokens


def test_a_message_stream_is_relayed_from_an_anthropic_upstream(gateway, fake_anthropic, client):
    with client.messages.stream(model="sonnet", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]

    assert text == "Echo: Say hello."
    assert final.usage.output_tokens == 3
    assert fake_anthropic.last.body["stream"] is True
    record = only_usage_record(request_id)
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)
    assert record.stream is True


def test_tool_use_through_an_anthropic_upstream(gateway, fake_anthropic, client):
    weather = [{"role": "user", "content": "What is the weather in Paris?"}]
    with client.messages.stream(
        model="sonnet", max_tokens=100, messages=weather, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    [tool_use] = [b for b in final.content if b.type == "tool_use"]
    assert (tool_use.name, tool_use.input) == ("get_weather", {"location": "Paris"})


def test_count_tokens_is_exact_for_an_anthropic_upstream(gateway, fake_anthropic, client):
    raw = client.messages.with_raw_response.count_tokens(model="sonnet", messages=HELLO)

    assert raw.parse().input_tokens == 2
    assert raw.headers["x-gateway-token-count"] == "exact"
    assert fake_anthropic.last.path == "/v1/messages/count_tokens"
    assert fake_anthropic.last.body["model"] == "claude-sonnet-fake"


# --- errors in Anthropic's shape ------------------------------------------------------------------


def _assert_anthropic_error(exc: anthropic.APIStatusError, status: int, type_: str) -> None:
    assert exc.status_code == status
    body = exc.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    assert body["request_id"] == exc.response.headers["x-request-id"]


def test_a_bad_key_is_an_authentication_error(gateway, client):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        _client(gateway, "sk-not-a-key").messages.create(
            model="sonnet", max_tokens=10, messages=HELLO
        )
    _assert_anthropic_error(caught.value, 401, "authentication_error")


def test_the_key_may_come_in_x_api_key(gateway, upstream, client):
    with gateway.http() as http:
        response = http.post(
            "/v1/messages",
            json={"model": "chat-fast", "max_tokens": 10, "messages": HELLO},
            headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == REPLY


def test_an_unknown_model_is_not_found(gateway, client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="no-such-model", max_tokens=10, messages=HELLO)
    _assert_anthropic_error(caught.value, 404, "not_found_error")
    assert only_usage_record(caught.value.response.headers["x-request-id"]).status_code == 404


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"model": "sonnet", "messages": HELLO}, "max_tokens"),
        ({"model": "sonnet", "max_tokens": 10, "messages": []}, "messages"),
        (
            {"model": "sonnet", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user"}]}, "content"),
    ],
    ids=["no max_tokens", "no messages", "system role", "no content"],
)
def test_an_invalid_body_is_a_bad_request(gateway, fake_anthropic, client, body, missing):
    with pytest.raises(anthropic.BadRequestError) as caught:
        # The SDK's own request method: messages.create checks required arguments itself.
        client.post("/v1/messages", body=body, cast_to=object)
    _assert_anthropic_error(caught.value, 400, "invalid_request_error")
    assert missing in caught.value.response.json()["error"]["message"]
    assert fake_anthropic.requests == []


def test_an_anthropic_rate_limit_is_a_429_in_anthropic_shape(gateway, fake_anthropic, client):
    fake_anthropic.fail(429, headers={"retry-after": "9"})
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="sonnet", max_tokens=10, messages=HELLO)
    _assert_anthropic_error(caught.value, 429, "rate_limit_error")
    assert caught.value.response.headers["retry-after"] == "9"


def test_an_overloaded_upstream_is_a_503_overloaded_error(gateway, fake_anthropic, client):
    fake_anthropic.fail(529)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="sonnet", max_tokens=10, messages=HELLO)
    _assert_anthropic_error(caught.value, 503, "overloaded_error")


def test_a_stream_cut_short_ends_with_an_anthropic_error_event(gateway, fake_anthropic, client):
    fake_anthropic.drop_stream(after_chunks=3)

    with gateway.http() as http:
        response = http.post(
            "/v1/messages",
            json={"model": "sonnet", "max_tokens": 10, "messages": HELLO, "stream": True},
            headers={"x-api-key": gateway.key},
        )

    assert response.status_code == 200
    assert response.text.startswith("event: message_start")
    last = response.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    error = json.loads(last.split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_disconnected")


def test_an_error_event_from_an_anthropic_upstream_is_relayed_and_recorded(
    gateway, fake_anthropic, client
):
    fake_anthropic.fail_mid_stream(after_chunks=3)

    stream = client.messages.stream(model="sonnet", max_tokens=100, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        events.get_final_message()

    assert "Overloaded" in str(caught.value)
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.error_type) == (502, "upstream_error")


def test_an_anthropic_stream_is_relayed_as_the_upstream_sent_it(gateway, fake_anthropic, client):
    with gateway.http() as http:
        response = http.post(
            "/v1/messages",
            json={"model": "sonnet", "max_tokens": 10, "messages": HELLO, "stream": True},
            headers={"x-api-key": gateway.key},
        )

    # What a translation would not reproduce: the pings, the provider's own usage fields.
    assert 'event: ping\ndata: {"type":"ping"}\n\n' in response.text
    assert '"service_tier":"standard"' in response.text
    assert '"model":"claude-sonnet-fake"' in response.text
    assert response.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_fields_an_openai_upstream_cannot_take_are_listed_as_dropped(gateway, upstream, client):
    raw = client.messages.with_raw_response.create(
        model="chat-fast",
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )

    assert raw.parse().content[0].text == REPLY
    assert raw.headers["x-gateway-dropped-params"] == "thinking"
    assert "thinking" not in upstream.received("/v1/chat/completions")[-1].body


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_get_is_refused_in_anthropic_shape(gateway, path):
    with gateway.http() as http:
        response = http.get(path, headers={"x-api-key": gateway.key})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    body = response.json()
    assert (body["type"], body["error"]["type"]) == ("error", "invalid_request_error")
    assert body["request_id"] == response.headers["x-request-id"]
