"""The Bedrock Converse codec: requests, answers, ConverseStream events, errors, Titan embeddings.

Requests go OpenAI (and Anthropic) -> IR -> Converse and back; answers Converse -> IR -> OpenAI
and Anthropic, checked against the official SDKs' response models; a recorded ConverseStream
event sequence (text deltas, a toolUse block whose input arrives in fragments, messageStop,
metadata usage) is re-framed as OpenAI chunks and as an Anthropic Messages stream, and read back
by the SDKs' own stream accumulators. Stream events are the (event_type, payload) pairs the
adapter gets from botocore's event-stream parser.
"""

import base64
import struct
import time

import anthropic as anthropic_sdk
import httpx2
import openai as openai_sdk
import orjson
import pytest
from anthropic._streaming import Stream as AnthropicStream
from anthropic.lib.streaming import MessageStream
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routing.formats import (
    Malformed,
    StreamTranslator,
    Unsupported,
    bedrock,
    codec,
    translate_request,
    translate_response,
)
from routing.formats.ir import (
    BlockStop,
    End,
    Error,
    Finish,
    Start,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)

PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
OPENAI_REQUEST = {
    "model": "public",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "Sunny, 21 C"},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "max_completion_tokens": 300,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["END"],
}
# What Converse gets for OPENAI_REQUEST, per the API reference.
CONVERSE_REQUEST = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"text": "Weather where this photo was taken?"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"text": "Let me check."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tooluse_1",
                        "content": [{"text": "Sunny, 21 C"}],
                        "status": "success",
                    }
                },
                {"text": "And tomorrow?"},
            ],
        },
    ],
    "system": [{"text": "Be brief."}],
    "inferenceConfig": {
        "maxTokens": 300,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
    },
    "toolConfig": {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "inputSchema": {
                        "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                    },
                }
            }
        ],
        "toolChoice": {"tool": {"name": "get_weather"}},
    },
}


def _to_bedrock(body: dict, source: str = "openai") -> tuple[dict, list[str]]:
    return translate_request(body, source=source, target="bedrock", model="anthropic.claude-x")


def _openai(**changes) -> dict:
    return {"model": "public", "messages": [{"role": "user", "content": "hi"}], **changes}


# --- requests -------------------------------------------------------------------------------------


def test_openai_request_becomes_the_exact_converse_body():
    body, dropped = _to_bedrock(OPENAI_REQUEST)
    assert body == CONVERSE_REQUEST
    assert dropped == []
    assert "model" not in body and "stream" not in body  # both are in the URL


def test_converse_request_round_trips_back_to_the_openai_request():
    body, dropped = translate_request(
        CONVERSE_REQUEST, source="bedrock", target="openai", model="public"
    )
    assert dropped == []
    # Arguments come back as compact JSON: Converse holds the input as an object.
    body["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"city": "Paris"}'
    assert body == OPENAI_REQUEST


def test_converse_request_round_trips_through_the_ir_unchanged():
    extra = {"additionalModelRequestFields": {"top_k": 40}, "guardrailConfig": {"x": 1}}
    body, dropped = _to_bedrock({**CONVERSE_REQUEST, **extra}, source="bedrock")
    assert body == {**CONVERSE_REQUEST, **extra}
    assert dropped == []


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"auto": {}}), ("required", {"any": {}}), (None, None)],
)
def test_tool_choice_maps_to_converse_words(choice, expected):
    body, _ = _to_bedrock(_openai(tools=[WEATHER_TOOL], tool_choice=choice))
    assert body["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_sends_no_tools_so_none_can_be_called():
    body, dropped = _to_bedrock(_openai(tools=[WEATHER_TOOL], tool_choice="none"))
    assert "toolConfig" not in body
    assert dropped == []


def test_tool_choice_none_keeps_tools_a_conversation_with_tool_calls_needs_and_says_so():
    request = {**OPENAI_REQUEST, "tool_choice": "none"}
    body, dropped = _to_bedrock(request)
    assert body["toolConfig"]["tools"] == CONVERSE_REQUEST["toolConfig"]["tools"]
    assert "toolChoice" not in body["toolConfig"]
    assert dropped == ["tool_choice"]


def test_anthropic_request_with_thinking_and_error_results_becomes_converse():
    body, dropped = _to_bedrock(
        {
            "model": "public",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "ZZZ"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "boom"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/jpeg",
                                        "data": PNG,
                                    },
                                },
                            ],
                        }
                    ],
                },
            ],
            "top_k": 5,
        },
        source="anthropic",
    )
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
        {"reasoningContent": {"redactedContent": "ZZZ"}},
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
    ]
    assert body["messages"][2]["content"] == [
        {
            "toolResult": {
                "toolUseId": "t1",
                "content": [
                    {"text": "boom"},
                    {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                ],
                "status": "error",
            }
        }
    ]
    assert body["system"] == [{"text": "sys"}]
    assert dropped == ["top_k"]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            "response_format",
        ),
    ],
)
def test_what_converse_cannot_honour_is_refused_naming_the_parameter(changes, param):
    with pytest.raises(Unsupported) as caught:
        _to_bedrock(_openai(**changes))
    assert caught.value.param == param


def test_image_urls_are_refused_naming_the_part():
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    with pytest.raises(Unsupported) as caught:
        _to_bedrock(_openai(messages=[{"role": "user", "content": content}]))
    assert caught.value.param == "messages[0].content[1]"
    assert "does not fetch image URLs" in caught.value.message


def test_image_types_bedrock_lacks_are_refused():
    url = f"data:image/bmp;base64,{PNG}"
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(Unsupported) as caught:
        _to_bedrock(_openai(messages=[{"role": "user", "content": content}]))
    assert caught.value.param == "messages[0].content[0]"


def test_broken_tool_call_arguments_are_refused_naming_them():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(Unsupported) as caught:
        _to_bedrock(_openai(messages=messages))
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_parameters_converse_lacks_are_dropped_and_listed():
    strict_tool = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    body, dropped = _to_bedrock(
        _openai(
            seed=7,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            user="u-1",
            parallel_tool_calls=False,
            tools=[strict_tool],
            service_tier="auto",
            messages=[{"role": "user", "content": "hi", "name": "ann"}],
        )
    )
    assert dropped == [
        "messages[].name",
        "tools[].function.strict",
        "parallel_tool_calls",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "service_tier",
    ]
    assert set(body) == {"messages", "toolConfig"}


def test_empty_texts_are_left_out_and_consecutive_roles_merge():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": ""},
        {"role": "user", "content": "b"},
    ]
    body, _ = _to_bedrock(_openai(messages=messages))
    assert body["messages"] == [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]


# --- answers --------------------------------------------------------------------------------------

CONVERSE_ANSWER = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "Weather?", "signature": "S1"}}},
                {"text": "Let me check."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_9",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {
        "inputTokens": 100,
        "outputTokens": 7,
        "totalTokens": 157,
        "cacheReadInputTokens": 30,
        "cacheWriteInputTokens": 20,
    },
    "metrics": {"latencyMs": 812},
}


def test_converse_answer_becomes_a_valid_openai_completion():
    answer, usage = translate_response(
        CONVERSE_ANSWER, source="bedrock", target="openai", model="public"
    )
    completion = ChatCompletion.model_validate(answer)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, orjson.loads(call.function.arguments)) == (
        "tooluse_9",
        "get_weather",
        {"city": "Paris"},
    )
    assert completion.model == "public" and completion.id.startswith("bedrock-")
    # Bedrock counts cached tokens apart, OpenAI's prompt_tokens includes them.
    assert usage == Usage(150, 7, 30, 20)
    assert completion.usage.prompt_tokens == 150
    assert completion.usage.prompt_tokens_details.cached_tokens == 30


def test_converse_answer_becomes_a_valid_anthropic_message_with_its_usage_split():
    answer, _ = translate_response(
        CONVERSE_ANSWER, source="bedrock", target="anthropic", model="public"
    )
    message = AnthropicMessage.model_validate(answer)
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == "S1"
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (100, 30)
    assert message.usage.cache_creation_input_tokens == 20


def test_converse_answer_round_trips_through_the_ir():
    resp = bedrock.response_to_ir(CONVERSE_ANSWER)
    again = bedrock.response_from_ir(resp, model="m")
    assert again["output"] == CONVERSE_ANSWER["output"]
    assert again["usage"] == {**CONVERSE_ANSWER["usage"], "totalTokens": 157}
    assert again["stopReason"] == "tool_use"


@pytest.mark.parametrize(
    ("stop", "openai_reason", "anthropic_reason"),
    [
        ("end_turn", "stop", "end_turn"),
        ("stop_sequence", "stop", "stop_sequence"),
        ("max_tokens", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("guardrail_intervened", "content_filter", "refusal"),
        ("content_filtered", "content_filter", "refusal"),
    ],
)
def test_stop_reasons_map_to_each_dialects_words(stop, openai_reason, anthropic_reason):
    body = {**CONVERSE_ANSWER, "stopReason": stop}
    answer, _ = translate_response(body, source="bedrock", target="openai", model="m")
    assert answer["choices"][0]["finish_reason"] == openai_reason
    answer, _ = translate_response(body, source="bedrock", target="anthropic", model="m")
    assert answer["stop_reason"] == anthropic_reason


def test_stop_sequence_reported_by_the_model_reaches_anthropic_clients():
    body = {
        **CONVERSE_ANSWER,
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "END"},
    }
    answer, _ = translate_response(body, source="bedrock", target="anthropic", model="m")
    assert answer["stop_sequence"] == "END"


def test_a_body_that_is_not_a_converse_answer_is_malformed():
    with pytest.raises(Malformed):
        bedrock.response_to_ir({"message": "nope"})


# --- streams --------------------------------------------------------------------------------------

# A recorded ConverseStream, as botocore's parser hands the adapter its events.
CONVERSE_STREAM = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me"}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " check."}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    (
        "contentBlockStart",
        {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather"}},
        },
    ),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"ci'}}}),
    (
        "contentBlockDelta",
        {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ty": "Paris"}'}}},
    ),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    ("messageStop", {"stopReason": "tool_use"}),
    (
        "metadata",
        {
            "usage": {
                "inputTokens": 40,
                "outputTokens": 20,
                "totalTokens": 70,
                "cacheReadInputTokens": 10,
            },
            "metrics": {"latencyMs": 400},
        },
    ),
]


def _translate(target: str, events=CONVERSE_STREAM, **kwargs) -> tuple[bytes, StreamTranslator]:
    translator = StreamTranslator("bedrock", target, **kwargs)
    return b"".join(translator.feed(event) for event in events), translator


def _response(raw: bytes, path: str) -> httpx2.Response:
    return httpx2.Response(
        200,
        content=raw,
        headers={"content-type": "text/event-stream"},
        request=httpx2.Request("POST", f"http://gateway.test{path}"),
    )


def test_converse_stream_decodes_to_ir_events():
    decoder = bedrock.stream_to_ir()
    events = [e for event in CONVERSE_STREAM for e in decoder.feed(event)]
    assert type(events[0]) is Start and events[0].id.startswith("bedrock-")
    assert events[1:] == [
        TextDelta(0, "Let me"),
        TextDelta(0, " check."),
        BlockStop(0),
        ToolCallStart(1, "tooluse_9", "get_weather"),
        ToolCallDelta(1, '{"ci'),
        ToolCallDelta(1, 'ty": "Paris"}'),
        BlockStop(1),
        Finish("tool_calls"),
        Usage(50, 20, 10, 0),
        End(),
    ]
    assert decoder.close() == []


def test_decoder_takes_boto3_style_one_key_dicts_too():
    decoder = bedrock.stream_to_ir()
    assert decoder.feed({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "x"}}})[
        1:
    ] == [TextDelta(0, "x")]


def test_converse_stream_becomes_valid_openai_chunks_the_sdk_accumulates():
    raw, translator = _translate("openai", model="public", include_usage=True)
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-2]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    client = openai_sdk.OpenAI(api_key="test")
    stream = openai_sdk.Stream(
        cast_to=ChatCompletionChunk, response=_response(raw, "/v1/chat/completions"), client=client
    )
    state = ChatCompletionStreamState()
    for chunk in stream:
        state.handle_chunk(chunk)
    completion = state.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("tooluse_9", "get_weather", '{"city": "Paris"}')
    ]
    assert completion.usage.prompt_tokens == 50
    assert completion.usage.completion_tokens == 20
    assert translator.finished and translator.finish_reason == "tool_calls"
    assert translator.usage == Usage(50, 20, 10, 0)


def test_converse_stream_becomes_an_anthropic_stream_the_sdk_accumulates():
    raw, _ = _translate("anthropic", model="public")
    client = anthropic_sdk.Anthropic(api_key="test")
    stream = AnthropicStream(
        cast_to=RawMessageStreamEvent, response=_response(raw, "/v1/messages"), client=client
    )
    message = MessageStream(stream, anthropic_sdk.NOT_GIVEN).get_final_message()
    assert message.model == "public"
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert (message.content[1].id, message.content[1].input) == ("tooluse_9", {"city": "Paris"})
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (40, 10)
    assert message.usage.output_tokens == 20


def test_reasoning_deltas_become_thinking_for_anthropic_clients():
    events = [
        ("messageStart", {"role": "assistant"}),
        (
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm."}}},
        ),
        (
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "S"}}},
        ),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hi"}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}}),
    ]
    decoder = bedrock.stream_to_ir()
    ir = [e for event in events for e in decoder.feed(event)]
    assert ThinkingDelta(0, "Hmm.") in ir and ThinkingDelta(0, signature="S") in ir
    raw, _ = _translate("anthropic", events, model="public")
    client = anthropic_sdk.Anthropic(api_key="test")
    stream = AnthropicStream(
        cast_to=RawMessageStreamEvent, response=_response(raw, "/v1/messages"), client=client
    )
    message = MessageStream(stream, anthropic_sdk.NOT_GIVEN).get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == ("Hmm.", "S")


def test_a_stream_cut_before_metadata_still_ends_for_the_client():
    translator = StreamTranslator("bedrock", "openai", model="m")
    for event in CONVERSE_STREAM[:3]:
        translator.feed(event)
    tail = translator.close()
    assert tail.endswith(b"data: [DONE]\n\n")
    assert translator.usage is None and translator.finished


@pytest.mark.parametrize(
    ("event_type", "anthropic_type"),
    [
        ("throttlingException", "rate_limit_error"),
        ("serviceUnavailableException", "overloaded_error"),
        ("modelStreamErrorException", "api_error"),
        ("validationException", "invalid_request_error"),
        ("internalServerException", "api_error"),
    ],
)
def test_exception_events_become_each_dialects_stream_error(event_type, anthropic_type):
    event = (event_type, {"message": "it broke"})
    assert bedrock.stream_to_ir().feed(event) == [Error(anthropic_type, "it broke")]
    raw, _ = _translate("anthropic", [event])
    data = orjson.loads(raw.split(b"\n")[1].removeprefix(b"data: "))
    assert data == {"type": "error", "error": {"type": anthropic_type, "message": "it broke"}}
    raw, _ = _translate("openai", [event])
    assert orjson.loads(raw.removeprefix(b"data: "))["error"]["message"] == "it broke"


def test_ir_stream_encodes_back_to_the_recorded_converse_events():
    decoder, encoder = bedrock.stream_to_ir(), bedrock.stream_from_ir()
    out = [e for event in CONVERSE_STREAM for ir in decoder.feed(event) for e in encoder.encode(ir)]
    expected = [*CONVERSE_STREAM[:-1], ("metadata", {**CONVERSE_STREAM[-1][1]})]
    expected[-1][1]["metrics"] = {"latencyMs": 0}
    expected[-1][1]["usage"] = {
        "inputTokens": 40,
        "outputTokens": 20,
        "totalTokens": 70,
        "cacheReadInputTokens": 10,
    }
    assert out == expected


# --- errors ---------------------------------------------------------------------------------------

CANARY = "AKIAIOSFODNN7CANARY1"


@pytest.mark.parametrize(
    ("status", "error_type", "kind", "answer", "retryable"),
    [
        (429, "ThrottlingException", "upstream_rate_limited", 429, True),
        (400, "ServiceQuotaExceededException", "upstream_rate_limited", 429, True),
        (503, "ServiceUnavailableException", "upstream_unavailable", 503, True),
        (429, "ModelNotReadyException", "upstream_unavailable", 503, True),
        (400, "ValidationException", "client_error", 400, False),
        (403, "AccessDeniedException", "upstream_error", 502, True),
        (403, "UnrecognizedClientException", "upstream_error", 502, True),
        (403, "InvalidSignatureException", "upstream_error", 502, True),
        (408, "ModelTimeoutException", "upstream_timeout", 504, True),
        (424, "ModelErrorException", "upstream_error", 502, True),
        (500, "InternalServerException", "upstream_error", 502, True),
        (404, "ResourceNotFoundException", "upstream_error", 502, True),
    ],
)
def test_bedrock_errors_map_to_the_gateways_kinds(status, error_type, kind, answer, retryable):
    headers = {"x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon/"}
    body = orjson.dumps({"message": f"The security token {CANARY} is invalid"})
    fault = bedrock.error_from_response(status, headers, body)
    assert (fault.kind, fault.status, fault.retryable) == (kind, answer, retryable)
    if kind != "client_error":
        assert CANARY not in fault.message


def test_validation_errors_relay_bedrocks_own_message():
    headers = {"x-amzn-errortype": "ValidationException:http://x"}
    body = b'{"message":"The model returned the following errors: temperature: range: 0..1"}'
    fault = bedrock.error_from_response(400, headers, body)
    assert fault.message == "The model returned the following errors: temperature: range: 0..1"


def test_throttling_keeps_retry_after_when_sent():
    headers = {"x-amzn-errortype": "ThrottlingException", "retry-after": "7"}
    fault = bedrock.error_from_response(429, headers, b'{"message":"Too many requests"}')
    assert fault.headers == {"retry-after": "7"}
    assert bedrock.error_from_response(429, {}, b"").headers == {}


def test_error_type_is_read_from_the_body_or_the_status_without_the_header():
    body = b'{"__type":"com.amazon.coral.service#AccessDeniedException","message":"no"}'
    assert bedrock.error_type({}, body) == "AccessDeniedException"
    assert bedrock.error_from_response(403, {}, body).status == 502
    assert bedrock.error_from_response(429, {}, b"not json").kind == "upstream_rate_limited"
    assert bedrock.error_from_response(502, {}, b"").kind == "upstream_error"
    assert bedrock.error_from_response(413, {}, b'{"message":"big"}').kind == "client_error"


def test_bedrock_error_body_shape():
    assert orjson.loads(bedrock.error_body(400, "invalid_request_error", "bad")) == {
        "message": "bad"
    }


# --- embeddings -----------------------------------------------------------------------------------


def test_titan_gets_one_body_per_input():
    bodies, dropped = bedrock.embed_request_from_openai(
        {"model": "public", "input": ["a", "b"], "dimensions": 256, "user": "u"},
        model="amazon.titan-embed-text-v2:0",
    )
    assert bodies == [
        {"inputText": "a", "normalize": True, "dimensions": 256},
        {"inputText": "b", "normalize": True, "dimensions": 256},
    ]
    assert dropped == ["user"]
    bodies, dropped = bedrock.embed_request_from_openai({"input": "one"}, model="m")
    assert (bodies, dropped) == ([{"inputText": "one", "normalize": True}], [])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": "x", "dimensions": 300}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_embedding_requests_titan_cannot_serve_are_refused(body, param):
    with pytest.raises(Unsupported) as caught:
        bedrock.embed_request_from_openai(body, model="m")
    assert caught.value.param == param


TITAN_ANSWERS = [
    {"embedding": [0.5, -0.25, 1.0], "inputTextTokenCount": 3},
    {"embedding": [0.0, 0.125, -1.0], "inputTextTokenCount": 4},
]


def test_titan_answers_become_one_openai_embeddings_list():
    answer, usage = bedrock.embed_responses_to_openai(TITAN_ANSWERS, model="public")
    parsed = CreateEmbeddingResponse.model_validate(answer)
    assert [d.embedding for d in parsed.data] == [[0.5, -0.25, 1.0], [0.0, 0.125, -1.0]]
    assert [d.index for d in parsed.data] == [0, 1]
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens == 7
    assert usage == Usage(input_tokens=7)


def test_base64_embeddings_are_openais_little_endian_float32():
    answer, _ = bedrock.embed_responses_to_openai(
        TITAN_ANSWERS, model="public", encoding_format="base64"
    )
    raw = base64.b64decode(answer["data"][1]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [0.0, 0.125, -1.0]


def test_a_titan_answer_without_an_embedding_is_malformed():
    with pytest.raises(Malformed):
        bedrock.embed_responses_to_openai([{"message": "x"}], model="m")


# --- the registry, and what translation costs -----------------------------------------------------


def test_bedrock_is_a_registered_codec():
    assert codec("bedrock") is bedrock


def test_translation_cost_is_measured_not_bounded(capsys):
    # A measurement for the report (printed with -s), not a pass/fail bound.
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        _to_bedrock(OPENAI_REQUEST)
    request_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        translate_response(CONVERSE_ANSWER, source="bedrock", target="openai", model="m")
    response_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds // 10):
        _translate("openai", model="m")
    stream_us = (time.perf_counter() - started) / (rounds // 10) / len(CONVERSE_STREAM) * 1e6
    print(
        f"\nbedrock: request {request_us:.1f} us, response {response_us:.1f} us, "
        f"stream {stream_us:.2f} us/event"
    )


def test_tool_history_without_tools_still_gets_the_tool_config_converse_requires():
    request = {k: v for k, v in OPENAI_REQUEST.items() if k not in ("tools", "tool_choice")}
    body, dropped = _to_bedrock(request)
    assert body["toolConfig"] == {
        "tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
        ]
    }
    assert dropped == []


def test_empty_and_blank_tool_results_get_content_converse_accepts():
    messages = [
        *OPENAI_REQUEST["messages"][:3],
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "  "},
    ]
    body, _ = _to_bedrock({**OPENAI_REQUEST, "messages": messages})
    result = body["messages"][-1]["content"][0]["toolResult"]
    assert result["content"] == [{"text": "(empty)"}]


def test_cohere_on_bedrock_gets_one_body_and_answers_as_openai():
    body, dropped = bedrock.cohere_embed_request_from_openai(
        {"input": ["a", "b"], "encoding_format": "float"}, model="cohere.embed-english-v3"
    )
    assert body == {
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert dropped == []
    cohere = {
        "id": "x",
        "response_type": "embeddings_by_type",
        "embeddings": {"float": [[1.0], [2.0]]},
    }
    answer, usage = bedrock.cohere_embed_response_to_openai(cohere, model="public", input_tokens=4)
    parsed = CreateEmbeddingResponse.model_validate(answer)
    assert [d.embedding for d in parsed.data] == [[1.0], [2.0]]
    assert parsed.usage.prompt_tokens == 4 and usage == Usage(input_tokens=4)
    with pytest.raises(Unsupported) as caught:
        bedrock.cohere_embed_request_from_openai({"input": ["x"] * 97}, model="m")
    assert caught.value.param == "input"
    with pytest.raises(Malformed):
        bedrock.cohere_embed_response_to_openai({"message": "no"}, model="m")
