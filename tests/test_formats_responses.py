"""Non-streamed answers, usage arithmetic, finish reasons and error shapes across formats.

The translated bodies are checked against the official SDKs' own response models, so a field the
SDKs require cannot go missing unnoticed.
"""

import orjson
import pytest
from anthropic.types import Message as AnthropicMessage
from openai.types.chat import ChatCompletion

from routing.formats import (
    Malformed,
    anthropic,
    anthropic_error_type,
    openai,
    translate_response,
)
from routing.formats.ir import ChatResponse, Text, ToolCall, Usage

ANTHROPIC_ANSWER = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 7,
    },
}
OPENAI_ANSWER = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ],
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 150,
        "completion_tokens": 7,
        "total_tokens": 157,
        "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_1",
}


def test_anthropic_answer_becomes_an_openai_completion():
    body, usage = translate_response(
        ANTHROPIC_ANSWER, source="anthropic", target="openai", model="public-model"
    )
    completion = ChatCompletion.model_validate(body)
    assert completion.model == "public-model"
    assert completion.id == ANTHROPIC_ANSWER["id"]
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."  # thinking has no OpenAI equivalent
    assert [
        (c.id, c.function.name, orjson.loads(c.function.arguments))
        for c in choice.message.tool_calls
    ] == [("toolu_01", "get_weather", {"city": "Paris"})]
    # Anthropic counts cached prompt tokens apart; OpenAI's prompt_tokens counts them all.
    assert completion.usage.prompt_tokens == 150
    assert completion.usage.prompt_tokens_details.cached_tokens == 30
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 157
    assert usage == Usage(
        input_tokens=150, output_tokens=7, cache_read_tokens=30, cache_write_tokens=20
    )


def test_openai_completion_becomes_an_anthropic_message():
    body, usage = translate_response(
        OPENAI_ANSWER, source="openai", target="anthropic", model="public-model"
    )
    message = AnthropicMessage.model_validate(body)
    assert message.model == "public-model"
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Checking."
    assert message.content[1].id == "call_1"
    assert message.content[1].input == {"city": "Rome"}
    assert message.usage.input_tokens == 120  # the uncached part
    assert message.usage.cache_read_input_tokens == 30
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == 7
    assert usage == Usage(input_tokens=150, output_tokens=7, cache_read_tokens=30)


def test_thinking_survives_anthropic_to_anthropic_through_the_ir():
    resp = anthropic.response_to_ir(ANTHROPIC_ANSWER)
    assert anthropic.response_from_ir(resp, model="claude-sonnet-4-5") == ANTHROPIC_ANSWER


def test_usage_arithmetic_round_trips_between_formats():
    usage = Usage(
        input_tokens=1000, output_tokens=50, cache_read_tokens=600, cache_write_tokens=300
    )
    wire = anthropic.usage_from_ir(usage)
    assert wire == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
    }
    assert anthropic.usage_to_ir(wire) == usage
    assert openai.usage_from_ir(usage) == {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 600},
    }
    # OpenAI has no word for cache writes: they stay counted in prompt_tokens.
    assert openai.usage_to_ir(openai.usage_from_ir(usage)) == Usage(
        input_tokens=1000, output_tokens=50, cache_read_tokens=600
    )
    assert anthropic.usage_to_ir({"input_tokens": 5, "output_tokens": 1}) == Usage(5, 1)


@pytest.mark.parametrize(
    ("anthropic_reason", "openai_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_anthropic_stop_reasons_become_openai_finish_reasons(anthropic_reason, openai_reason):
    body = {**ANTHROPIC_ANSWER, "stop_reason": anthropic_reason}
    answer, _ = translate_response(body, source="anthropic", target="openai", model="m")
    assert answer["choices"][0]["finish_reason"] == openai_reason


@pytest.mark.parametrize(
    ("openai_reason", "anthropic_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_openai_finish_reasons_become_anthropic_stop_reasons(openai_reason, anthropic_reason):
    choice = {**OPENAI_ANSWER["choices"][0], "finish_reason": openai_reason}
    body = {**OPENAI_ANSWER, "choices": [choice]}
    answer, _ = translate_response(body, source="openai", target="anthropic", model="m")
    assert answer["stop_reason"] == anthropic_reason


def test_matched_stop_sequence_is_reported_to_anthropic_clients_and_reads_stop_for_openai():
    resp = anthropic.response_to_ir(
        {**ANTHROPIC_ANSWER, "stop_reason": "stop_sequence", "stop_sequence": "END"}
    )
    assert (resp.finish_reason, resp.stop_sequence) == ("stop_sequence", "END")
    assert anthropic.response_from_ir(resp, model="m")["stop_sequence"] == "END"
    assert openai.response_from_ir(resp, model="m")["choices"][0]["finish_reason"] == "stop"


def test_text_only_answers_translate_both_ways():
    resp = ChatResponse(
        id="x", model="m", parts=[Text("Hello")], finish_reason="stop", usage=Usage(3, 1)
    )
    completion = ChatCompletion.model_validate(openai.response_from_ir(resp, model="m"))
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].message.tool_calls is None
    message = AnthropicMessage.model_validate(anthropic.response_from_ir(resp, model="m"))
    assert [b.text for b in message.content] == ["Hello"]
    assert message.stop_reason == "end_turn"


def test_broken_tool_arguments_from_a_model_reach_anthropic_clients_as_empty_input():
    resp = ChatResponse(
        id="x",
        model="m",
        parts=[ToolCall("c1", "f", '{"city": "Par')],
        finish_reason="tool_calls",
        usage=Usage(),
    )
    body = anthropic.response_from_ir(resp, model="m")
    assert body["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]


def test_an_openai_refusal_reaches_anthropic_clients_as_text():
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    body = {**OPENAI_ANSWER, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    answer, _ = translate_response(body, source="openai", target="anthropic", model="m")
    assert answer["content"] == [{"type": "text", "text": "I can't help with that."}]


@pytest.mark.parametrize(
    ("codec", "body"),
    [
        (openai, {"choices": []}),
        (openai, {"id": "x"}),
        (anthropic, {"id": "x"}),
        (anthropic, {"content": [{"type": "tool_use"}]}),
    ],
)
def test_an_upstream_body_that_is_not_an_answer_is_malformed(codec, body):
    with pytest.raises(Malformed):
        codec.response_to_ir(body)


# --- error shapes ---------------------------------------------------------------------------------


def test_openai_error_body_has_openai_shape():
    body = orjson.loads(
        openai.error_body(
            400, "invalid_request_error", "bad n", param="n", code="unsupported", request_id="r1"
        )
    )
    assert body == {
        "error": {
            "message": "bad n",
            "type": "invalid_request_error",
            "param": "n",
            "code": "unsupported",
            "request_id": "r1",
        }
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error_type_follows_the_status(status, expected):
    assert anthropic_error_type(status) == expected
    body = orjson.loads(anthropic.error_body(status, "upstream_error", "boom", request_id="r1"))
    assert body == {
        "type": "error",
        "error": {"type": expected, "message": "boom"},
        "request_id": "r1",
    }


def test_anthropic_error_body_keeps_a_type_anthropic_knows():
    body = orjson.loads(anthropic.error_body(400, "not_found_error", "no such model"))
    assert body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no such model"},
    }


def test_anthropic_error_body_is_what_the_sdk_raises_from():
    import anthropic as sdk
    import httpx2

    client = sdk.Anthropic(api_key="test")
    response = httpx2.Response(
        429,
        content=anthropic.error_body(429, "rate_limit_error", "slow down"),
        request=httpx2.Request("POST", "http://gateway.test/v1/messages"),
    )
    error = client._make_status_error_from_response(response)
    assert isinstance(error, sdk.RateLimitError)
    assert error.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


def test_stream_errors_have_each_formats_framing():
    assert openai.stream_error(504, "upstream_error", "timed out", code="upstream_timeout") == (
        b'data: {"error":{"message":"timed out","type":"upstream_error","param":null,'
        b'"code":"upstream_timeout"}}\n\n'
    )
    assert anthropic.stream_error(503, "service_unavailable", "shutting down") == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"shutting down"}}\n\n'
    )
