"""OpenAI clients served by an Anthropic upstream: the request, the answer and the stream are
translated (routing.formats), errors mapped, usage settled once from Anthropic's counts."""

import logging
from decimal import Decimal

import openai
import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team
from tests.fakes import rules
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .support import TEAM, assert_openai_error, only_usage_record, wait_for_usage_records

pytest_plugins = ("tests.fakes.fixtures",)

# (input, output) USD per 1M tokens of the deployments below.
PRICE_IN, PRICE_OUT = Decimal("3"), Decimal("15")

CONFIG = """
providers:
  - {{name: claude, kind: anthropic, api_base: "{base}", api_key: "{key}"}}
  - {{name: claude-backup, kind: anthropic, api_base: "{base}", api_key: "{key}"}}
models:
  - name: sonnet
    deployments:
      - {{provider: claude, model: claude-sonnet-fake,
         input_cost_per_mtok: 3, output_cost_per_mtok: 15}}
  - name: sonnet-ha
    deployments:
      - {{provider: claude, model: claude-primary,
         input_cost_per_mtok: 3, output_cost_per_mtok: 15}}
      - {{provider: claude-backup, model: claude-backup,
         input_cost_per_mtok: 4, output_cost_per_mtok: 20}}
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def claude(gateway, fake_anthropic):
    config_load(text=CONFIG.format(base=fake_anthropic.url, key=ANTHROPIC_KEY))
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return gateway.client()


def _cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * PRICE_IN + output_tokens * PRICE_OUT) / Decimal(1_000_000)


def test_a_completion_is_translated_both_ways(gateway, fake_anthropic, claude):
    raw = claude.chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "system", "content": "Be brief."}, *HELLO]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Echo: Say hello."
    assert completion.choices[0].finish_reason == "stop"
    sent = fake_anthropic.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["model"] == "claude-sonnet-fake"
    assert sent.body["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert sent.body["max_tokens"] == 4096  # the deployment sets none: Anthropic needs one
    # Input: "Be brief." + "Say hello." (4 words); output: "Echo: Say hello." (3 words).
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == _cost(4, 3)
    assert "x-gateway-dropped-params" not in raw.headers
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (4, 3, False)
    assert record.cost_usd == _cost(4, 3)
    assert (record.provider_name, record.upstream_model) == ("claude", "claude-sonnet-fake")


def test_a_stream_is_translated_into_openai_chunks_with_the_usage_chunk(
    gateway, fake_anthropic, claude
):
    raw = claude.chat.completions.with_raw_response.create(
        model="sonnet", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Say hello."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert fake_anthropic.last.body["stream"] is True
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)
    assert record.stream is True
    assert record.cost_usd == _cost(2, 3)


def test_a_stream_without_include_usage_has_no_usage_chunk_but_is_settled(
    gateway, fake_anthropic, claude
):
    raw = claude.chat.completions.with_raw_response.create(
        model="sonnet", messages=HELLO, stream=True
    )
    chunks = list(raw.parse())

    assert all(c.choices for c in chunks)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)


def test_a_tool_call_comes_back_as_an_openai_tool_call(gateway, fake_anthropic, claude):
    completion = claude.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments.replace(" ", "") == '{"location":"Paris"}'
    sent = fake_anthropic.last.body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["required"] == ["location"]

    # The tool's result goes back as an OpenAI tool message, Anthropic's tool_result upstream.
    answer = claude.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].message.content == rules.tool_result_reply("sunny")


def test_a_streamed_tool_call_arrives_as_argument_deltas(gateway, fake_anthropic, claude):
    stream = claude.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "weather in Paris please"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    names, arguments, reasons = [], [], []
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            if call.function.name:
                names.append(call.function.name)
            arguments.append(call.function.arguments or "")
        reasons.append(chunk.choices[0].finish_reason)

    assert names == ["get_weather"]
    assert "".join(arguments) == '{"location":"Paris"}'
    assert len([a for a in arguments if a]) > 1  # streamed in pieces, not at once
    assert reasons[-1] == "tool_calls"


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"n": 2}, "n"), ({"temperature": 1.5}, "temperature")],
    ids=["n", "temperature"],
)
def test_a_parameter_anthropic_cannot_honour_is_refused_before_any_call(
    gateway, fake_anthropic, claude, fields, param
):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "sonnet", "messages": HELLO, **fields},
            headers=gateway.auth(),
        )

    error = assert_openai_error(response, 400, "unsupported_parameter")
    assert error["param"] == param
    assert f"'{param}'" in error["message"]
    assert fake_anthropic.requests == []
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (400, "unsupported_parameter")


def test_a_dropped_parameter_is_listed_in_a_header(gateway, fake_anthropic, claude):
    raw = claude.chat.completions.with_raw_response.create(model="sonnet", messages=HELLO, seed=7)

    assert raw.parse().choices[0].message.content == "Echo: Say hello."
    assert raw.headers["x-gateway-dropped-params"] == "seed"
    assert "seed" not in fake_anthropic.last.body


def test_anthropic_rate_limit_is_a_429_with_its_retry_after(gateway, fake_anthropic, claude):
    fake_anthropic.fail(429, headers={"retry-after": "7"})

    with pytest.raises(openai.RateLimitError) as caught:
        claude.chat.completions.create(model="sonnet", messages=HELLO)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "7"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_anthropic_overloaded_is_a_503(gateway, fake_anthropic, claude):
    fake_anthropic.fail(529)

    with pytest.raises(openai.InternalServerError) as caught:
        claude.chat.completions.create(model="sonnet", messages=HELLO)

    assert_openai_error(caught.value.response, 503, "upstream_unavailable")


def test_anthropic_overloaded_falls_back_to_the_next_deployment(gateway, fake_anthropic, claude):
    fake_anthropic.fail(529, model="claude-primary")

    raw = claude.chat.completions.with_raw_response.create(
        model="sonnet-ha", messages=HELLO, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse())

    assert text == "Echo: Say hello."
    assert raw.headers["x-gateway-deployment"] == "claude-backup/claude-backup"
    # Overloaded is worth one retry of the same deployment (with backoff), then the next one.
    sent = [r.body["model"] for r in fake_anthropic.requests]
    assert sent == ["claude-primary", "claude-primary", "claude-backup"]
    [record] = wait_for_usage_records(1)
    assert (record.attempts, record.upstream_model) == (3, "claude-backup")


def test_anthropic_bad_request_is_relayed_in_openai_shape(gateway, fake_anthropic, claude):
    fake_anthropic.fail(400, message="messages: roles must alternate")

    with pytest.raises(openai.BadRequestError) as caught:
        claude.chat.completions.create(model="sonnet-ha", messages=HELLO)

    error = assert_openai_error(caught.value.response, 400)
    assert error["message"] == "messages: roles must alternate"
    assert len(fake_anthropic.requests) == 1  # the caller's mistake: not tried elsewhere


def test_the_anthropic_key_appears_in_no_log_error_header_or_usage_row(
    gateway, fake_anthropic, claude, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_anthropic.fail(400, message=f"bad request from {ANTHROPIC_KEY}", times=1)
    fake_anthropic.fail(401, message=f"invalid x-api-key {ANTHROPIC_KEY}", times=1)
    seen = []
    with gateway.http() as http:
        for _ in range(3):
            response = http.post(
                "/v1/chat/completions",
                json={"model": "sonnet", "messages": HELLO},
                headers=gateway.auth(),
            )
            seen.append((response.status_code, response.text, str(response.headers)))

    assert [status for status, _, _ in seen] == [400, 502, 200]
    assert "rejected the gateway's credentials" in seen[1][1]
    for _, body, headers in seen:
        assert ANTHROPIC_KEY not in body and ANTHROPIC_KEY not in headers
    assert ANTHROPIC_KEY not in caplog.text
    for record in wait_for_usage_records(3):
        values = [str(getattr(record, f.attname)) for f in record._meta.concrete_fields]
        assert not any(ANTHROPIC_KEY in value for value in values)


def test_an_error_event_mid_stream_reaches_the_client_and_the_usage_row(
    gateway, fake_anthropic, claude
):
    fake_anthropic.fail_mid_stream(after_chunks=3)

    raw = claude.chat.completions.with_raw_response.create(
        model="sonnet", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(raw.parse())

    assert "Overloaded" in str(caught.value)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_error")
