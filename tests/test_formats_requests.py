"""Requests across wire formats: OpenAI chat -> Anthropic Messages and back, through the IR.

Pure translation (no servers): what is translated, what is dropped and listed, what is refused
with the parameter named.
"""

import pytest

from routing.formats import Defaults, Unsupported, anthropic, openai, translate_request

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def to_anthropic(body: dict, **defaults) -> tuple[dict, list[str]]:
    return translate_request(
        {"model": "public", **body},
        source="openai",
        target="anthropic",
        model="claude-up",
        defaults=Defaults(**defaults) if defaults else None,
    )


def to_openai(body: dict, **defaults) -> tuple[dict, list[str]]:
    return translate_request(
        {"model": "public", "max_tokens": 100, **body},
        source="anthropic",
        target="openai",
        model="gpt-up",
        defaults=Defaults(**defaults) if defaults else None,
    )


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# --- OpenAI -> Anthropic --------------------------------------------------------------------------


def test_openai_conversation_with_tools_becomes_alternating_anthropic_messages():
    body, dropped = to_anthropic(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                user("Weather in Paris and Rome?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "24C"}],
                },
                user("And tomorrow?"),
            ],
            "tools": [TOOL],
        }
    )
    assert dropped == []
    assert body["model"] == "claude-up"
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use tools."},
    ]
    assert body["tools"] == [ANTHROPIC_TOOL]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        # Consecutive tool messages and the next user message merge into one user turn,
        # tool results first.
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


def test_consecutive_user_messages_merge_and_empty_ones_vanish():
    body, _ = to_anthropic(
        {
            "messages": [
                user("one"),
                {"role": "assistant", "content": ""},
                user("two"),
                {"role": "assistant", "content": "ok"},
            ]
        }
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]


def test_images_by_url_and_data_url_become_anthropic_image_sources():
    body, dropped = to_anthropic(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:image/jpeg;base64,/9j/4AAQ",
                                "detail": "high",
                            },
                        },
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        },
    ]
    assert dropped == ["image_url.detail"]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice_and_parallel_tool_calls_map_to_anthropic(tool_choice, parallel, expected):
    extra = {"tool_choice": tool_choice} if tool_choice is not None else {}
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    body, dropped = to_anthropic({"messages": [user("hi")], "tools": [TOOL], **extra})
    assert body.get("tool_choice") == expected
    assert dropped == []


def test_max_tokens_prefers_max_completion_tokens_and_defaults_per_deployment():
    assert to_anthropic({"messages": [user("hi")]}, max_tokens=1234)[0]["max_tokens"] == 1234
    assert to_anthropic({"messages": [user("hi")], "max_tokens": 50})[0]["max_tokens"] == 50
    both = {"messages": [user("hi")], "max_tokens": 50, "max_completion_tokens": 70}
    assert to_anthropic(both)[0]["max_tokens"] == 70


def test_sampling_stop_user_and_stream_are_translated():
    body, dropped = to_anthropic(
        {
            "messages": [user("hi")],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert dropped == []
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["stream"] is True
    assert "stream_options" not in body
    assert to_anthropic({"messages": [user("x")], "stop": ["a", "b"]})[0]["stop_sequences"] == [
        "a",
        "b",
    ]


def test_json_schema_response_format_becomes_structured_output():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body, dropped = to_anthropic(
        {
            "messages": [user("hi")],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            },
        }
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert dropped == []
    plain, _ = to_anthropic({"messages": [user("hi")], "response_format": {"type": "text"}})
    assert "output_config" not in plain


def test_parameters_anthropic_cannot_honour_are_dropped_and_listed():
    body, dropped = to_anthropic(
        {
            "messages": [{"role": "user", "content": "hi", "name": "alice"}],
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"42": 1},
            "service_tier": "auto",
            "store": False,
            "n": 1,
            "logprobs": False,
        }
    )
    assert dropped == [
        "messages[].name",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "service_tier",
        "store",
    ]
    for name in ("seed", "logit_bias", "service_tier", "store", "n", "logprobs"):
        assert name not in body


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"temperature": 1.5}, "temperature"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy"}}, "modalities"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice"),
    ],
)
def test_parameters_anthropic_cannot_honour_are_refused_by_name(extra, param):
    with pytest.raises(Unsupported) as caught:
        to_anthropic({"messages": [user("hi")], **extra})
    assert caught.value.param == param
    assert caught.value.status == 400
    assert caught.value.message


def test_temperature_up_to_one_passes_unchanged():
    assert to_anthropic({"messages": [user("hi")], "temperature": 1})[0]["temperature"] == 1


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},
            "messages[1].content[0].type",
        ),
        ({"role": "function", "name": "f", "content": "x"}, "messages[1].role"),
        (
            {
                "role": "developer",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
            },
            "messages[1].content",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:a,b"}}]},
            "messages[1].content[0].image_url.url",
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
                ],
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
def test_content_anthropic_cannot_take_is_refused_by_its_position(message, param):
    with pytest.raises(Unsupported) as caught:
        to_anthropic({"messages": [{"role": "system", "content": "s"}, message]})
    assert caught.value.param == param


def test_tool_call_without_arguments_becomes_an_empty_input():
    call = {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
    body, _ = to_anthropic(
        {"messages": [user("time?"), {"role": "assistant", "tool_calls": [call]}]}
    )
    assert body["messages"][1]["content"][0]["input"] == {}


# --- Anthropic -> OpenAI --------------------------------------------------------------------------


def test_anthropic_conversation_with_tools_becomes_openai_messages():
    body, dropped = to_openai(
        {
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBOR",
                            },
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.gif"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "lookup",
                            "input": {"q": "x"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
            "tools": [ANTHROPIC_TOOL],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "metadata": {"user_id": "u-1"},
        }
    )
    assert dropped == []
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.gif"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":"x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
        {"role": "user", "content": "Thanks"},
    ]
    assert body["tools"] == [TOOL]
    assert body["tool_choice"] == "required"
    assert body["stop"] == ["END"]
    assert body["temperature"] == 0.2
    assert body["user"] == "u-1"
    assert body["max_completion_tokens"] == 100


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
)
def test_anthropic_tool_choice_maps_to_openai(choice, expected, parallel):
    body, _ = to_openai(
        {"messages": [user("hi")], "tools": [ANTHROPIC_TOOL], "tool_choice": choice}
    )
    assert body["tool_choice"] == expected
    assert body.get("parallel_tool_calls") == parallel


def test_max_tokens_field_follows_the_deployment_kind():
    assert (
        to_openai({"messages": [user("hi")]}, max_tokens_field="max_tokens")[0]["max_tokens"] == 100
    )
    assert (
        "max_completion_tokens"
        not in to_openai({"messages": [user("hi")]}, max_tokens_field="max_tokens")[0]
    )


def test_streamed_anthropic_request_asks_openai_for_usage():
    body, _ = to_openai({"messages": [user("hi")], "stream": True})
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_structured_output_becomes_a_strict_json_schema_response_format():
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    body, dropped = to_openai(
        {
            "messages": [user("hi")],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        }
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True},
    }
    assert dropped == ["output_config.effort"]


def test_anthropic_only_features_are_dropped_and_listed():
    body, dropped = to_openai(
        {
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                user("hi"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                },
            ],
            "top_k": 40,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "metadata": {"user_id": "u", "trace": "x"},
            "service_tier": "auto",
        }
    )
    assert dropped == [
        "cache_control",
        "metadata.trace",
        "messages[].thinking",
        "tool_result.is_error",
        "top_k",
        "thinking",
        "service_tier",
    ]
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    for name in ("top_k", "thinking", "service_tier", "metadata"):
        assert name not in body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.test", "name": "m"}]}, "mcp_servers"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {
                                        "type": "image",
                                        "source": {"type": "url", "url": "https://x.test/i.png"},
                                    }
                                ],
                            }
                        ],
                    }
                ]
            },
            "messages[0].content",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source.type",
        ),
    ],
)
def test_anthropic_content_openai_cannot_take_is_refused_by_name(body, param):
    with pytest.raises(Unsupported) as caught:
        to_openai({"messages": [user("hi")], **body})
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ("openai", {"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
        ("openai", {"model": "m"}),
        (
            "anthropic",
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
        ),
        ("anthropic", {"model": "m", "messages": "hi"}),
    ],
)
def test_a_body_validation_let_through_malformed_is_still_a_400(source, body):
    with pytest.raises(Unsupported) as caught:
        translate_request(
            body, source=source, target="anthropic" if source == "openai" else "openai", model="m"
        )
    assert "malformed" in caught.value.message


# --- round trips and same-format use ------------------------------------------------------------


def test_openai_request_survives_a_round_trip_through_anthropic():
    original = {
        "messages": [
            {"role": "system", "content": "sys"},
            user("q"),
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_completion_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["x"],
        "user": "u",
        "stream": True,
    }
    there, _ = to_anthropic(original)
    back, dropped = translate_request(there, source="anthropic", target="openai", model="public")
    assert dropped == []
    assert back == {
        **original,
        "model": "public",
        "stream_options": {"include_usage": True},
    }


def test_anthropic_request_survives_a_round_trip_through_openai():
    original = {
        "model": "public",
        "max_tokens": 100,
        "system": "sys",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1, 2]}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "r"},
                    {"type": "text", "text": "next"},
                ],
            },
        ],
        "tools": [ANTHROPIC_TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "temperature": 0.3,
        "stop_sequences": ["x"],
        "metadata": {"user_id": "u"},
        "stream": True,
    }
    there, _ = to_openai(original)
    back, dropped = translate_request(
        there, source="openai", target="anthropic", model="public", defaults=Defaults()
    )
    assert dropped == []
    assert back == original


def test_unknown_fields_are_kept_when_the_target_is_the_same_format():
    req = openai.request_to_ir({"model": "m", "messages": [user("hi")], "logit_bias": {"1": 2}})
    body, dropped = openai.request_from_ir(req, model="m")
    assert body["logit_bias"] == {"1": 2}
    assert dropped == []
    req = anthropic.request_to_ir(
        {"model": "m", "max_tokens": 5, "messages": [user("hi")], "thinking": {"type": "adaptive"}}
    )
    body, dropped = anthropic.request_from_ir(req, model="m")
    assert body["thinking"] == {"type": "adaptive"}
    assert dropped == []
