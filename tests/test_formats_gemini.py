"""Gemini's generateContent format through the IR: requests, answers, SSE streams, errors,
embeddings.

Pure translation (no servers): OpenAI and Anthropic bodies become Gemini bodies and back;
recorded Gemini answers and streams become OpenAI completions and chunks (validated by the
official SDK's types and stream accumulator) and Anthropic messages and events (read back by
the anthropic SDK's stream accumulator).
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
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routing.formats import (
    StreamTranslator,
    Unsupported,
    codec,
    gemini,
    translate_request,
    translate_response,
)
from routing.formats.errors import Malformed
from routing.formats.ir import (
    BlockStop,
    End,
    Finish,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def to_gemini(body: dict, source: str = "openai") -> tuple[dict, list[str]]:
    return translate_request(
        {"model": "public", **body}, source=source, target="gemini", model="gemini-2.5-flash"
    )


def from_gemini(body: dict, target: str = "openai") -> tuple[dict, list[str]]:
    return translate_request(body, source="gemini", target=target, model="gpt-up")


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
]


# --- requests -------------------------------------------------------------------------------------


def test_openai_conversation_with_tools_becomes_gemini_contents():
    body, dropped = to_gemini({"messages": CONVERSATION, "tools": [TOOL]})
    assert dropped == []
    assert "model" not in body  # the model is in the URL
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                # Gemini 3 needs a thought signature on the first call of a step; a call made
                # elsewhere has none, so it gets the documented placeholder.
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "skip_thought_signature_validator",
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": TOOL["function"]["parameters"],
                }
            ]
        }
    ]


def test_anthropic_error_tool_result_becomes_a_function_response_error():
    body, _ = to_gemini(
        {
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "run", "input": {"x": 1}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                },
            ],
        },
        source="anthropic",
    )
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "run", "response": {"error": "boom"}}}],
    }
    assert body["generationConfig"] == {"maxOutputTokens": 100}


def test_tool_result_without_its_call_is_refused_naming_the_message():
    with pytest.raises(Unsupported) as exc:
        to_gemini(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_zzz", "content": "x"},
                ]
            }
        )
    assert exc.value.param == "messages[1].tool_call_id"
    assert "call_zzz" in exc.value.message


def test_images_by_data_url_and_http_url_become_inline_and_file_data():
    body, _ = to_gemini(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.JPG?s=1"}},
                    ],
                }
            ]
        }
    )
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.JPG?s=1"}},
    ]


def test_image_url_without_a_known_image_extension_is_refused():
    with pytest.raises(Unsupported) as exc:
        to_gemini(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/img"}}],
                    }
                ]
            }
        )
    assert exc.value.param == "messages[0].content"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_becomes_function_calling_config(tool_choice, expected):
    body, _ = to_gemini(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [TOOL],
            "tool_choice": tool_choice,
        }
    )
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_generation_parameters_become_generation_config():
    body, dropped = to_gemini(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 64,
            "max_tokens": 999,
            "temperature": 1.5,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "n": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert dropped == []
    assert body["generationConfig"] == {
        "maxOutputTokens": 64,
        "temperature": 1.5,
        "topP": 0.9,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "stopSequences": ["END"],
    }
    assert "stream" not in body  # streaming is the URL's choice (streamGenerateContent)


def test_anthropic_top_k_becomes_top_k():
    body, _ = to_gemini(
        {"max_tokens": 10, "top_k": 40, "messages": [{"role": "user", "content": "hi"}]},
        source="anthropic",
    )
    assert body["generationConfig"] == {"maxOutputTokens": 10, "topK": 40}


def test_json_modes_become_response_mime_type_and_json_schema():
    hi = [{"role": "user", "content": "hi"}]
    body, _ = to_gemini({"messages": hi, "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body, _ = to_gemini(
        {
            "messages": hi,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        }
    )
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


def test_parameters_gemini_cannot_honour_are_dropped_and_listed():
    body, dropped = to_gemini(
        {
            "messages": [{"role": "user", "content": "hi", "name": "bob"}],
            "tools": [{**TOOL, "function": {**TOOL["function"], "strict": True}}],
            "parallel_tool_calls": False,
            "user": "u-1",
            "service_tier": "flex",
            "reasoning_effort": "low",
        }
    )
    assert dropped == [
        "messages[].name",
        "tools[].function.strict",
        "parallel_tool_calls",
        "user",
        "service_tier",
        "reasoning_effort",
    ]
    assert set(body) == {"contents", "tools"}


def test_anthropic_thinking_in_history_is_dropped_and_listed():
    _, dropped = to_gemini(
        {
            "max_tokens": 10,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "hello"},
                    ],
                },
            ],
        },
        source="anthropic",
    )
    assert dropped == ["messages[].thinking", "thinking"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
    ],
)
def test_parameters_gemini_cannot_honour_are_refused_by_name(extra, param):
    with pytest.raises(Unsupported) as exc:
        to_gemini({"messages": [{"role": "user", "content": "hi"}], **extra})
    assert exc.value.param == param


def test_broken_tool_call_arguments_in_history_are_refused_by_position():
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
            ],
        },
    ]
    with pytest.raises(Unsupported) as exc:
        to_gemini({"messages": messages})
    assert exc.value.param == "messages[1].tool_calls[0].function.arguments"


def test_openai_request_survives_a_round_trip_through_gemini():
    original = {
        "model": "public",
        "messages": CONVERSATION,
        "tools": [TOOL],
        "tool_choice": "required",
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.8,
        "seed": 3,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
    }
    gemini_body, _ = to_gemini(original)
    back, dropped = from_gemini(gemini_body)
    assert dropped == []
    assert back["messages"][0] == {"role": "system", "content": "You are terse."}
    assistant = back["messages"][2]
    assert assistant["content"] == "Checking."
    # Gemini has no call ids: they are synthesized, and results are matched to calls in order.
    ids = [call["id"] for call in assistant["tool_calls"]]
    assert ids == ["call_0", "call_1"]
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        '{"city":"Paris"}',
        '{"city":"Rome"}',
    ]
    assert back["messages"][3:] == [
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temp":21}'},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"content":"sunny"}'},
    ]
    assert back["tools"] == [TOOL]
    assert back["tool_choice"] == "required"
    for key in ("temperature", "top_p", "seed", "stop", "response_format"):
        assert back[key] == original[key], key
    assert back["max_completion_tokens"] == 50


def test_gemini_only_fields_are_kept_for_gemini_and_dropped_for_others():
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"responseModalities": ["TEXT"], "candidateCount": 1},
    }
    same, dropped = from_gemini(body, target="gemini")
    assert same["safetySettings"] == body["safetySettings"]
    assert dropped == ["generationConfig.responseModalities"]
    _, dropped = from_gemini(body, target="openai")
    assert dropped == ["generationConfig.responseModalities", "safetySettings"]


def test_gemini_named_function_choice_and_schema_round_trip_to_anthropic():
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"maxOutputTokens": 20, "topK": 5},
    }
    out, _ = from_gemini(body, target="anthropic")
    assert out["tool_choice"] == {"type": "tool", "name": "f"}
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    assert (out["max_tokens"], out["top_k"]) == (20, 5)


def test_gemini_tool_other_than_function_declarations_is_refused_by_name():
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [{"codeExecution": {}}],
    }
    with pytest.raises(Unsupported) as exc:
        from_gemini(body)
    assert exc.value.param == "tools[0].codeExecution"


# --- responses ------------------------------------------------------------------------------------

GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Let me check.", "thoughtSignature": "sig"},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 120,
        "candidatesTokenCount": 30,
        "thoughtsTokenCount": 12,
        "cachedContentTokenCount": 100,
        "totalTokenCount": 162,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-1",
}


def test_gemini_answer_with_a_function_call_becomes_an_openai_completion():
    answer, usage = translate_response(
        GEMINI_ANSWER, source="gemini", target="openai", model="public"
    )
    completion = ChatCompletion.model_validate(answer)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_0",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert completion.id == "resp-1" and completion.model == "public"
    # Thinking tokens are billed as output; the cached ones are part of the prompt.
    assert usage == Usage(input_tokens=120, output_tokens=42, cache_read_tokens=100)
    assert completion.usage.prompt_tokens_details.cached_tokens == 100


def test_gemini_answer_becomes_an_anthropic_message():
    answer, _ = translate_response(
        GEMINI_ANSWER, source="gemini", target="anthropic", model="public"
    )
    message = anthropic_sdk.types.Message.model_validate(answer)
    assert message.stop_reason == "tool_use"
    assert message.content[1].input == {"city": "Paris"}
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100


def test_gemini_sent_call_ids_are_kept():
    body = orjson.loads(orjson.dumps(GEMINI_ANSWER))
    body["candidates"][0]["content"]["parts"][1]["functionCall"]["id"] = "fc-9"
    answer, _ = translate_response(body, source="gemini", target="openai", model="m")
    assert answer["choices"][0]["message"]["tool_calls"][0]["id"] == "fc-9"


def _answer(reason: str, text: str = "x") -> dict:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": reason}
        ]
    }


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_gemini_finish_reasons_become_openai_finish_reasons(reason, expected):
    answer, _ = translate_response(_answer(reason), source="gemini", target="openai", model="m")
    assert answer["choices"][0]["finish_reason"] == expected


def test_a_safety_blocked_answer_reaches_anthropic_clients_as_refusal():
    answer, _ = translate_response(
        _answer("SAFETY", ""), source="gemini", target="anthropic", model="m"
    )
    assert (answer["stop_reason"], answer["content"]) == ("refusal", [])


def test_a_blocked_prompt_without_candidates_is_content_filter_with_usage():
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash",
    }
    answer, usage = translate_response(body, source="gemini", target="openai", model="m")
    ChatCompletion.model_validate(answer)
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["choices"][0]["message"]["content"] == ""
    assert usage == Usage(input_tokens=9)


@pytest.mark.parametrize(
    "body", [{}, {"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}]
)
def test_an_upstream_body_that_is_not_an_answer_is_malformed(body):
    with pytest.raises(Malformed):
        gemini.response_to_ir(body)


def test_openai_completion_becomes_a_gemini_answer_and_back():
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    answer, _ = translate_response(completion, source="openai", target="gemini", model="gem")
    assert answer["candidates"][0] == {
        "content": {
            "role": "model",
            "parts": [{"text": "hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}],
        },
        "finishReason": "STOP",
        "index": 0,
    }
    assert answer["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 3,
        "totalTokenCount": 8,
    }
    back, usage = translate_response(answer, source="gemini", target="openai", model="gpt")
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    assert usage == Usage(5, 3)


# --- streams --------------------------------------------------------------------------------------


def _sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


def _chunk(parts: list, reason: str | None = None, usage: dict | None = None) -> bytes:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
    if reason:
        candidate["finishReason"] = reason
    body: dict = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-s",
    }
    if usage:
        body["usageMetadata"] = usage
    return _sse(body)


# A recorded streamGenerateContent?alt=sse stream: text in two chunks, a whole functionCall,
# and the last chunk with the finish reason and the final usage.
GEMINI_STREAM = [
    _chunk([{"text": "Let me"}], usage={"promptTokenCount": 50, "totalTokenCount": 50}),
    _chunk([{"text": " check."}]),
    _chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]),
    _chunk(
        [{"text": ""}],
        "STOP",
        {
            "promptTokenCount": 50,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 5,
            "cachedContentTokenCount": 10,
            "totalTokenCount": 75,
        },
    ),
]


def test_gemini_stream_decodes_to_ir_events():
    decoder = gemini.stream_to_ir()
    events = [ir for event in GEMINI_STREAM for ir in decoder.feed(event)]
    assert events == [
        Start("resp-s", "gemini-2.5-flash"),
        TextDelta(0, "Let me"),
        Usage(input_tokens=50),
        TextDelta(0, " check."),
        BlockStop(0),
        ToolCallStart(1, "call_0", "get_weather"),
        ToolCallDelta(1, '{"city":"Paris"}'),
        BlockStop(1),
        Finish("tool_calls"),
        Usage(input_tokens=50, output_tokens=25, cache_read_tokens=10),
        End(),
    ]
    assert decoder.close() == []  # the stream already ended at the finish reason


def _openai_chunks(raw: bytes) -> list[dict]:
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    return [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-2]]


def _response(raw: bytes, path: str) -> httpx2.Response:
    return httpx2.Response(
        200,
        content=raw,
        headers={"content-type": "text/event-stream"},
        request=httpx2.Request("POST", f"http://gateway.test{path}"),
    )


def test_gemini_stream_becomes_valid_openai_chunks_with_whole_arguments():
    translator = StreamTranslator("gemini", "openai", model="public", include_usage=True)
    raw = b"".join(translator.feed(event) for event in GEMINI_STREAM)
    assert translator.finished and translator.finish_reason == "tool_calls"
    assert translator.usage == Usage(50, 25, 10)
    chunks = [ChatCompletionChunk.model_validate(c) for c in _openai_chunks(raw)]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [d.content for d in deltas[:3]] == ["", "Let me", " check."]
    call = deltas[3].tool_calls[0]
    assert (call.index, call.id, call.function.name) == (0, "call_0", "get_weather")
    assert deltas[4].tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 25

    stream = openai_sdk.Stream(
        cast_to=ChatCompletionChunk,
        response=_response(raw, "/v1/chat/completions"),
        client=openai_sdk.OpenAI(api_key="test"),
    )
    state = ChatCompletionStreamState()
    for chunk in stream:
        state.handle_chunk(chunk)
    completion = state.get_final_completion()
    assert completion.choices[0].message.content == "Let me check."
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert completion.usage.prompt_tokens == 50


def test_gemini_stream_becomes_an_anthropic_stream_the_sdk_reads():
    translator = StreamTranslator("gemini", "anthropic", model="public")
    raw = b"".join(translator.feed(event) for event in GEMINI_STREAM)
    stream = AnthropicStream(
        cast_to=RawMessageStreamEvent,
        response=_response(raw, "/v1/messages"),
        client=anthropic_sdk.Anthropic(api_key="test"),
    )
    message = MessageStream(stream, anthropic_sdk.NOT_GIVEN).get_final_message()
    assert message.model == "public" and message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert message.content[1].input == {"city": "Paris"}
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (40, 10)
    assert message.usage.output_tokens == 25


def test_a_safety_block_mid_stream_ends_the_openai_stream_with_content_filter():
    events = [_chunk([{"text": "Once"}]), _chunk([], "SAFETY", {"promptTokenCount": 4})]
    translator = StreamTranslator("gemini", "openai", model="m", include_usage=False)
    chunks = _openai_chunks(b"".join(translator.feed(e) for e in events))
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert translator.finished


def test_a_blocked_prompt_stream_is_content_filter():
    event = _sse(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    )
    translator = StreamTranslator("gemini", "openai", model="m", include_usage=False)
    chunks = _openai_chunks(translator.feed(event))
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert translator.usage == Usage(input_tokens=3)


def test_max_tokens_stream_is_length_and_an_unfinished_one_is_closed():
    translator = StreamTranslator("gemini", "openai", model="m", include_usage=False)
    raw = translator.feed(_chunk([{"text": "a"}], "MAX_TOKENS"))
    assert _openai_chunks(raw)[-1]["choices"][0]["finish_reason"] == "length"
    cut = StreamTranslator("gemini", "openai", model="m", include_usage=False)
    raw = cut.feed(_chunk([{"text": "a"}]))
    assert not cut.finished
    assert cut.close() == b"data: [DONE]\n\n" and cut.finished


def test_an_error_event_in_a_gemini_stream_becomes_an_openai_error_event():
    event = _sse({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    out = StreamTranslator("gemini", "openai").feed(event)
    assert orjson.loads(out.removeprefix(b"data: "))["error"]["message"] == "overloaded"


def test_openai_stream_becomes_gemini_chunks_with_whole_function_calls():
    head = '"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt"'

    def delta(d: str, finish: str = "null") -> bytes:
        choice = f'{{"index":0,"delta":{d},"finish_reason":{finish}}}'
        return f'data: {{{head},"choices":[{choice}]}}\n\n'.encode()

    usage = '{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}'
    events = [
        delta('{"role":"assistant","content":"Hi"}'),
        delta(
            '{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"a"}}]}'
        ),
        delta('{"tool_calls":[{"index":0,"function":{"arguments":"\\":1}"}}]}'),
        delta("{}", '"tool_calls"'),
        f'data: {{{head},"choices":[],"usage":{usage}}}\n\n'.encode(),
        b"data: [DONE]\n\n",
    ]
    translator = StreamTranslator("openai", "gemini", model="gem")
    raw = b"".join(translator.feed(e) for e in events)
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in raw.split(b"\r\n\r\n") if e]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert parts == [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 2,
        "totalTokenCount": 7,
    }
    assert {c["modelVersion"] for c in chunks} == {"gem"}


SIGNATURE = "CiEBjz1rX0ilumvPg6k0sMMU+tISoQ/CLJv2bw=="  # base64, as Gemini sends bytes


def _next_turn_parts(calls: list[dict]) -> list[dict]:
    """The model parts Gemini gets back when an OpenAI client returns `calls` in its history."""
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": "21"} for c in calls),
    ]
    body, _ = to_gemini({"messages": messages})
    return body["contents"][1]["parts"]


def test_a_thought_signature_survives_an_openai_client_in_the_call_id():
    signed = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": SIGNATURE},
                        {"functionCall": {"name": "g", "args": {"x": 1}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    answer, _ = translate_response(signed, source="gemini", target="openai", model="m")
    calls = answer["choices"][0]["message"]["tool_calls"]
    assert calls[0]["id"].startswith("call_0_sig_") and calls[1]["id"] == "call_1"
    assert all(c.isalnum() or c in "_-" for c in calls[0]["id"])  # a valid Anthropic id too
    assert _next_turn_parts(calls) == [
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "g", "args": {"x": 1}}},
    ]


def test_a_streamed_thought_signature_survives_an_openai_client():
    part = {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": SIGNATURE}
    translator = StreamTranslator("gemini", "openai", model="m", include_usage=False)
    chunks = _openai_chunks(translator.feed(_chunk([part], "STOP")))
    call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    history = [{"id": call["id"], "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert _next_turn_parts(history)[0]["thoughtSignature"] == SIGNATURE


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (418, "INVALID_ARGUMENT"),
        (502, "INTERNAL"),
    ],
)
def test_gemini_error_body_has_gemini_shape_and_status_name(status, name):
    body = orjson.loads(codec("gemini").error_body(status, "whatever", "nope", param="n"))
    assert body == {"error": {"code": status, "message": "nope", "status": name}}


def test_gemini_stream_error_is_one_data_event():
    raw = gemini.stream_error(429, "rate_limit", "slow down")
    assert raw.startswith(b"data: ") and raw.endswith(b"\r\n\r\n")
    assert orjson.loads(raw[6:])["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_error_from_body_reads_the_status_name_and_message():
    body = b'{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}'
    assert gemini.error_from_body(429, body) == ("RESOURCE_EXHAUSTED", "Quota exceeded")
    array = [{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]
    assert gemini.error_from_body(400, array) == ("INVALID_ARGUMENT", "bad")
    assert gemini.error_from_body(503, b"<html>oops</html>") == (
        "UNAVAILABLE",
        "the provider answered HTTP 503",
    )
    assert gemini.HTTP_BY_STATUS_NAME["RESOURCE_EXHAUSTED"] == 429


def test_an_invalid_api_key_reads_as_unauthenticated_not_as_the_clients_400():
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    name, message = gemini.error_from_body(400, orjson.dumps(body))
    assert name == "UNAUTHENTICATED" and message.startswith("API key not valid")


def test_retry_delay_is_read_from_retry_info():
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
            ],
        }
    }
    assert gemini.retry_delay(orjson.dumps(body)) == 37.0
    assert gemini.retry_delay({"error": {"code": 429, "message": "x"}}) is None
    assert gemini.retry_delay(b"not json") is None


# --- embeddings -----------------------------------------------------------------------------------


def test_openai_embeddings_request_becomes_batch_embed_contents():
    body, dropped = gemini.embed_request_from_openai(
        {"model": "public", "input": ["a", "bb"], "dimensions": 256, "user": "u"},
        model="text-embedding-004",
    )
    assert body == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 256,
            },
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "bb"}]},
                "outputDimensionality": 256,
            },
        ]
    }
    assert dropped == ["user"]
    single, _ = gemini.embed_request_from_openai({"input": "x"}, model="models/e")
    assert single["requests"][0]["model"] == "models/e"


@pytest.mark.parametrize("value", [[1, 2, 3], [[1, 2]], [], None, ["a", 1]])
def test_token_array_embedding_inputs_are_refused_naming_input(value):
    with pytest.raises(Unsupported) as exc:
        gemini.embed_request_from_openai({"input": value}, model="e")
    assert exc.value.param == "input"


def test_gemini_embeddings_become_an_openai_list_with_estimated_usage():
    from openai.types import CreateEmbeddingResponse

    upstream = {"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]}
    answer, usage = gemini.embed_response_to_openai(
        upstream, model="public", inputs=["abcdefgh", "abc"]
    )
    parsed = CreateEmbeddingResponse.model_validate(answer)
    assert [d.embedding for d in parsed.data] == [[0.5, -1.0], [0.25, 2.0]]
    assert [d.index for d in parsed.data] == [0, 1]
    assert usage == Usage(input_tokens=3) and parsed.usage.prompt_tokens == 3
    encoded, _ = gemini.embed_response_to_openai(upstream, model="m", encoding_format="base64")
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    with pytest.raises(Malformed):
        gemini.embed_response_to_openai({"error": {}}, model="m")


# --- cost -----------------------------------------------------------------------------------------


def test_translation_cost_is_measured(capsys):
    """Reports the µs per translation (a measurement printed with -s, not a timed assertion)."""
    body = {"model": "public", "messages": CONVERSATION, "tools": [TOOL], "max_tokens": 50}
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        to_gemini(body)
    request_us = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for _ in range(rounds):
        translate_response(GEMINI_ANSWER, source="gemini", target="openai", model="m")
    response_us = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for _ in range(rounds // 4):
        translator = StreamTranslator("gemini", "openai", model="m")
        for event in GEMINI_STREAM:
            translator.feed(event)
    chunk_us = (time.perf_counter() - start) / (rounds // 4) / len(GEMINI_STREAM) * 1e6
    with capsys.disabled():
        print(
            f"\ngemini translation: request {request_us:.1f} µs, response {response_us:.1f} µs, "
            f"stream {chunk_us:.1f} µs/chunk"
        )
    assert request_us > 0 and response_us > 0 and chunk_us > 0
