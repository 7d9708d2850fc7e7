"""The fake Anthropic API, through the official `anthropic` SDK and plain HTTP.

The SDK parsing every answer (streams included) is the proof that the fake speaks the wire
format adapters will meet; plain httpx covers what the SDK hides (headers, raw events).
"""

import base64

import anthropic
import httpx
import pytest

from tests.fakes import rules, wire

pytest_plugins = ("tests.fakes.fixtures",)

MODEL = "claude-sonnet-4-20250514"
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["location"],
    },
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


@pytest.fixture
def client(fake_anthropic):
    return anthropic.Anthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=0
    )


def _ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _post(fake, body: dict, **headers) -> httpx.Response:
    headers = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01", **headers}
    return httpx.post(f"{fake.url}/v1/messages", json=body, headers=headers, timeout=10)


def test_sdk_reads_an_answer_echoing_the_last_user_message(client, fake_anthropic):
    message = client.messages.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=_ask("Hello there")
    )

    assert message.content[0].text == "Echo: Hello there"
    assert message.stop_reason == "end_turn"
    # Input: "Be brief." + "Hello there" = 4 words; output: "Echo: Hello there" = 3 words.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    received = fake_anthropic.last
    assert received.body["model"] == MODEL and received.operation == "messages"
    assert "anthropic-version" in received.headers


def test_sdk_streams_text_in_several_deltas(client):
    with client.messages.stream(model=MODEL, max_tokens=100, messages=_ask("one two three")) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()

    assert len(pieces) == 4 and "".join(pieces) == "Echo: one two three"
    assert final.content[0].text == "Echo: one two three"
    assert final.usage.output_tokens == 4 and final.stop_reason == "end_turn"


async def test_async_sdk_streams_too(fake_anthropic):
    client = anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key=fake_anthropic.api_key)
    async with client.messages.stream(model=MODEL, max_tokens=50, messages=_ask("hi")) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "Echo: hi"


def test_stream_events_come_in_the_documented_order_with_a_ping(fake_anthropic):
    body = {"model": MODEL, "max_tokens": 100, "messages": _ask("weather?"), "stream": True}
    body["tools"] = [WEATHER]

    response = _post(fake_anthropic, body)

    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [wire.anthropic_event_kind(n, d) for n, d in wire.parse_sse(response.content)]
    assert wire.collapse(kinds) == [
        "message_start",
        "content_block_start/text",
        "ping",
        "content_block_delta/text_delta",
        "content_block_stop",
        "content_block_start/tool_use",
        "content_block_delta/input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_offered_tools_and_asked_about_weather_the_model_calls_the_first_tool(client):
    message = client.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER], messages=_ask("What's the weather in Paris?")
    )

    text, call = message.content
    assert text.text == "Let me use get_weather."
    assert (call.name, call.input) == ("get_weather", {"location": "Paris"})
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 4 + rules.count_tokens('{"location":"Paris"}')


def test_tool_arguments_stream_as_several_json_deltas(client):
    partials = []
    with client.messages.stream(
        model=MODEL, max_tokens=100, tools=[WEATHER], messages=_ask("weather in Paris")
    ) as stream:
        for event in stream:
            if event.type == "input_json":
                partials.append(event.partial_json)
        final = stream.get_final_message()

    assert len(partials) >= 3 and partials[0] == ""
    assert final.content[-1].input == {"location": "Paris"}


def test_a_forced_tool_is_called_without_a_preamble(client):
    other = {**WEATHER, "name": "get_time"}
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER, other],
        tool_choice={"type": "tool", "name": "get_time"},
        messages=_ask("hello"),
    )
    assert [b.type for b in message.content] == ["tool_use"]
    assert message.content[0].name == "get_time"


def test_a_tool_result_is_answered_with_its_content(client):
    first = client.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER], messages=_ask("weather in Paris?")
    )
    call = first.content[-1]
    messages = [
        *_ask("weather in Paris?"),
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny 21C"}],
        },
    ]

    answer = client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER], messages=messages)

    assert answer.content[0].text == "Tool result: Sunny 21C"


def test_a_tool_result_answering_no_tool_use_is_refused(client):
    messages = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=messages)
    assert "unexpected `tool_use_id`" in caught.value.message


def test_images_as_base64_and_url_are_accepted_and_counted(client):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?"},
    ]
    message = client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": content}]
    )
    assert message.usage.input_tokens == 3 + 2 * rules.IMAGE_TOKENS

    content[0]["source"]["media_type"] = "image/tiff"
    with pytest.raises(anthropic.BadRequestError, match="media_type"):
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": content}]
        )


def test_thinking_streams_thinking_and_signature_deltas_first(client):
    kinds = []
    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=_ask("Why?"),
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        final = stream.get_final_message()

    assert "thinking_delta" in kinds and "signature_delta" in kinds
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking about: Why?"

    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        client.messages.create(
            model=MODEL,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 100},
            messages=_ask("Why?"),
        )


def test_a_cache_control_prefix_is_written_once_then_read(client):
    system = [
        {"type": "text", "text": "a long shared prompt", "cache_control": {"type": "ephemeral"}}
    ]

    first = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=_ask("hi"))
    second = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=_ask("yo"))

    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (4, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (
        0,
        4,
    )
    assert first.usage.input_tokens == second.usage.input_tokens == 1


def test_max_tokens_and_stop_sequences_set_the_stop_reason(client):
    cut = client.messages.create(model=MODEL, max_tokens=2, messages=_ask("a b c d"))
    assert (cut.content[0].text, cut.stop_reason) == ("Echo: a", "max_tokens")

    stopped = client.messages.create(
        model=MODEL, max_tokens=50, stop_sequences=["END"], messages=_ask("a b END d")
    )
    assert stopped.content[0].text == "Echo: a b "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "END")


def test_an_unsafe_marker_gets_a_refusal_stop_reason(client):
    message = client.messages.create(model=MODEL, max_tokens=10, messages=_ask(rules.UNSAFE_REPLY))
    assert (message.content, message.stop_reason) == ([], "refusal")


def test_count_tokens_counts_what_messages_bills(client):
    kwargs = {"model": MODEL, "system": "You are a scientist", "messages": _ask("Hello, Claude")}
    counted = client.messages.count_tokens(**kwargs)
    billed = client.messages.create(max_tokens=10, **kwargs)
    assert counted.input_tokens == billed.usage.input_tokens == 6


def test_a_wrong_or_missing_credential_is_an_authentication_error(client, fake_anthropic):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.with_options(api_key="sk-ant-wrong").messages.create(
            model=MODEL, max_tokens=10, messages=_ask("hi")
        )
    assert caught.value.body["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }

    missing = httpx.post(
        f"{fake_anthropic.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 1, "messages": _ask("hi")},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert missing.status_code == 401
    assert missing.json()["error"]["message"] == "x-api-key header is required"


def test_the_version_header_is_required(fake_anthropic):
    response = httpx.post(
        f"{fake_anthropic.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 1, "messages": _ask("hi")},
        headers={"x-api-key": fake_anthropic.api_key},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_overloaded_is_529_and_a_rate_limit_429_says_when_to_retry(client, fake_anthropic):
    fake_anthropic.fail(529, times=1)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.create(model=MODEL, max_tokens=10, messages=_ask("hi"))
    assert overloaded.value.body["error"]["type"] == "overloaded_error"

    fake_anthropic.fail(429, times=1, headers={"retry-after": "17"})
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model=MODEL, max_tokens=10, messages=_ask("hi"))
    assert limited.value.response.headers["retry-after"] == "17"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.body["request_id"] == limited.value.response.headers["request-id"]


def test_an_error_event_mid_stream_reaches_the_sdk(client, fake_anthropic):
    fake_anthropic.fail_mid_stream(after_chunks=4, times=1)
    received = []
    stream = client.messages.stream(model=MODEL, max_tokens=50, messages=_ask("a b c"))
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        received.extend(events.text_stream)
    assert received == ["Echo: "]
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"n": 2}, "n: Extra inputs are not permitted"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
        ({"messages": []}, "messages: at least one message is required"),
    ],
)
def test_bad_requests_are_refused_as_the_api_refuses_them(fake_anthropic, change, message):
    body = {"model": MODEL, "max_tokens": 10, "messages": _ask("hi"), **change}
    body = {k: v for k, v in body.items() if v is not None}

    response = _post(fake_anthropic, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]


def test_an_unlisted_model_is_not_found_when_the_fake_lists_models():
    from tests.fakes import FakeAnthropic

    with FakeAnthropic(models=["claude-known"]) as fake:
        client = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["claude-known"]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-other", max_tokens=5, messages=_ask("hi"))
