"""Streams across formats: recorded upstream streams, re-framed event by event.

An OpenAI stream (text, two streamed tool calls, the finish chunk, the usage-only chunk) is
re-encoded as an Anthropic Messages stream, and an Anthropic stream (thinking, text, a tool_use
whose input arrives in several input_json_delta fragments, ping, message_delta usage) as an
OpenAI one. The output is checked event by event, and then read back by the official SDKs'
own stream decoders and accumulators, without a server: their SSE parsers take the bytes from
an in-memory response.
"""

import anthropic as anthropic_sdk
import httpx2
import openai as openai_sdk
import orjson
import pytest
from anthropic._streaming import Stream as AnthropicStream
from anthropic.lib.streaming import MessageStream
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from routing.formats import StreamTranslator, anthropic, openai
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

_HEAD = (
    '"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1741570000,"model":"gpt-4.1"'
)


def _chunk(choice: str, usage: str = "null") -> bytes:
    return f'data: {{{_HEAD},"choices":[{choice}],"usage":{usage}}}\n\n'.encode()


def _delta(delta: str, finish: str = "null") -> bytes:
    return _chunk(f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}')


# A recorded OpenAI stream, with stream_options.include_usage.
OPENAI_STREAM = [
    _delta('{"role":"assistant","content":"","refusal":null}'),
    _delta('{"content":"Let me"}'),
    _delta('{"content":" check."}'),
    _delta(
        '{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
        '"function":{"name":"get_weather","arguments":""}}]}'
    ),
    _delta('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"ci"}}]}'),
    _delta('{"tool_calls":[{"index":0,"function":{"arguments":"ty\\": \\"Paris\\"}"}}]}'),
    _delta(
        '{"tool_calls":[{"index":1,"id":"call_2","type":"function",'
        '"function":{"name":"get_time","arguments":""}}]}'
    ),
    _delta('{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}'),
    _delta("{}", '"tool_calls"'),
    f'data: {{{_HEAD},"choices":[],"usage":{{"prompt_tokens":50,"completion_tokens":20,'
    '"total_tokens":70,"prompt_tokens_details":{"cached_tokens":10,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'.encode(),
    b"data: [DONE]\n\n",
]


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def _block_delta(index: int, delta: str) -> bytes:
    return _event(
        "content_block_delta", f'{{"type":"content_block_delta","index":{index},"delta":{delta}}}'
    )


# A recorded Anthropic stream with extended thinking and a tool call.
ANTHROPIC_STREAM = [
    _event(
        "message_start",
        '{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",'
        '"model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
        '"usage":{"input_tokens":12,"cache_creation_input_tokens":100,'
        '"cache_read_input_tokens":200,"output_tokens":1}}}',
    ),
    _event(
        "content_block_start",
        '{"type":"content_block_start","index":0,'
        '"content_block":{"type":"thinking","thinking":"","signature":""}}',
    ),
    _event("ping", '{"type": "ping"}'),
    _block_delta(0, '{"type":"thinking_delta","thinking":"The user wants the weather."}'),
    _block_delta(0, '{"type":"signature_delta","signature":"EqQBCgIYAhIM"}'),
    _event("content_block_stop", '{"type":"content_block_stop","index":0}'),
    _event(
        "content_block_start",
        '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
    ),
    _block_delta(1, '{"type":"text_delta","text":"Checking."}'),
    _event("content_block_stop", '{"type":"content_block_stop","index":1}'),
    _event(
        "content_block_start",
        '{"type":"content_block_start","index":2,"content_block":{"type":"tool_use",'
        '"id":"toolu_01","name":"get_weather","input":{}}}',
    ),
    _block_delta(2, '{"type":"input_json_delta","partial_json":""}'),
    _block_delta(2, '{"type":"input_json_delta","partial_json":"{\\"city\\": "}'),
    _block_delta(2, '{"type":"input_json_delta","partial_json":"\\"Par"}'),
    _block_delta(2, '{"type":"input_json_delta","partial_json":"is\\"}"}'),
    _event("content_block_stop", '{"type":"content_block_stop","index":2}'),
    _event(
        "message_delta",
        '{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
        '"usage":{"output_tokens":89}}',
    ),
    _event("message_stop", '{"type":"message_stop"}'),
]


def _translate(events: list[bytes], source: str, target: str, **kwargs) -> bytes:
    translator = StreamTranslator(source, target, **kwargs)
    return b"".join(translator.feed(event) for event in events)


def _anthropic_events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for event in raw.split(b"\n\n")[:-1]:
        name, data = event.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        parsed = orjson.loads(data[6:])
        assert parsed["type"] == name[7:].decode()
        out.append((parsed["type"], parsed))
    return out


def _openai_chunks(raw: bytes) -> list:
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


# --- OpenAI stream -> Anthropic stream ------------------------------------------------------------


def test_openai_stream_with_tool_calls_becomes_the_exact_anthropic_event_sequence():
    events = _anthropic_events(_translate(OPENAI_STREAM, "openai", "anthropic", model="public"))

    def block_delta(index, delta):
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def block(name, index, **more):
        return (name, {"type": name, "index": index, **more})

    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "chatcmpl-abc",
                    "type": "message",
                    "role": "assistant",
                    "model": "public",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        ),
        block("content_block_start", 0, content_block={"type": "text", "text": ""}),
        ("ping", {"type": "ping"}),
        block_delta(0, {"type": "text_delta", "text": "Let me"}),
        block_delta(0, {"type": "text_delta", "text": " check."}),
        block("content_block_stop", 0),
        block(
            "content_block_start",
            1,
            content_block={"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        ),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"ci'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": 'ty": "Paris"}'}),
        block("content_block_stop", 1),
        block(
            "content_block_start",
            2,
            content_block={"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        ),
        block_delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
        block("content_block_stop", 2),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                # The finish chunk came before the usage chunk; both wait for the end.
                "usage": {
                    "input_tokens": 40,
                    "output_tokens": 20,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 10,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_anthropic_sdk_reads_the_translated_stream():
    raw = _translate(OPENAI_STREAM, "openai", "anthropic", model="public")
    client = anthropic_sdk.Anthropic(api_key="test")
    stream = AnthropicStream(
        cast_to=RawMessageStreamEvent, response=_response(raw, "/v1/messages"), client=client
    )
    message = MessageStream(stream, anthropic_sdk.NOT_GIVEN).get_final_message()
    assert message.model == "public"
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert (message.content[1].id, message.content[1].name) == ("call_1", "get_weather")
    assert message.content[1].input == {"city": "Paris"}
    assert message.content[2].input == {}
    assert message.usage.input_tokens == 40
    assert message.usage.cache_read_input_tokens == 10
    assert message.usage.output_tokens == 20


def test_openai_stream_decodes_to_ir_events():
    decoder = openai.stream_to_ir()
    events = [ir for event in OPENAI_STREAM for ir in decoder.feed(event)]
    assert events == [
        Start("chatcmpl-abc", "gpt-4.1"),
        TextDelta(0, "Let me"),
        TextDelta(0, " check."),
        BlockStop(0),
        ToolCallStart(1, "call_1", "get_weather"),
        ToolCallDelta(1, '{"ci'),
        ToolCallDelta(1, 'ty": "Paris"}'),
        BlockStop(1),
        ToolCallStart(2, "call_2", "get_time"),
        ToolCallDelta(2, "{}"),
        BlockStop(2),
        Finish("tool_calls"),
        Usage(input_tokens=50, output_tokens=20, cache_read_tokens=10),
        End(),
    ]
    assert decoder.close() == []  # already ended


# --- Anthropic stream -> OpenAI stream ------------------------------------------------------------


def test_anthropic_stream_with_thinking_and_tool_use_becomes_the_exact_openai_chunks():
    chunks = _openai_chunks(_translate(ANTHROPIC_STREAM, "anthropic", "openai", model="public"))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == "msg_01"
        assert chunk["model"] == "public"
        assert chunk["object"] == "chat.completion.chunk"
    assert [chunk["choices"][0]["delta"] if chunk["choices"] else None for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Checking."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Par'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]},
        {},
        None,
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 6 + ["tool_calls"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    # message_start's input and cache counts and message_delta's output count, in one chunk.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 312,
        "completion_tokens": 89,
        "total_tokens": 401,
        "prompt_tokens_details": {"cached_tokens": 200},
    }


def test_openai_sdk_reads_the_translated_stream():
    raw = _translate(ANTHROPIC_STREAM, "anthropic", "openai", model="public")
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
    assert choice.message.content == "Checking."
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("toolu_01", "get_weather", '{"city": "Paris"}')
    ]
    assert completion.usage.prompt_tokens == 312
    assert completion.usage.completion_tokens == 89


def test_anthropic_stream_decodes_to_ir_events():
    decoder = anthropic.stream_to_ir()
    events = [ir for event in ANTHROPIC_STREAM for ir in decoder.feed(event)]
    start_usage = Usage(
        input_tokens=312, output_tokens=1, cache_read_tokens=200, cache_write_tokens=100
    )
    assert events == [
        Start("msg_01", "claude-sonnet-4-5", start_usage),
        ThinkingDelta(0, ""),
        ThinkingDelta(0, "The user wants the weather."),
        ThinkingDelta(0, signature="EqQBCgIYAhIM"),
        BlockStop(0),
        TextDelta(1, ""),
        TextDelta(1, "Checking."),
        BlockStop(1),
        ToolCallStart(2, "toolu_01", "get_weather"),
        ToolCallDelta(2, '{"city": '),
        ToolCallDelta(2, '"Par'),
        ToolCallDelta(2, 'is"}'),
        BlockStop(2),
        Finish("tool_calls"),
        Usage(input_tokens=312, output_tokens=89, cache_read_tokens=200, cache_write_tokens=100),
        End(),
    ]


def test_anthropic_stream_keeps_its_blocks_through_the_ir():
    raw = _translate(ANTHROPIC_STREAM, "anthropic", "anthropic")
    expected = [(name, data) for name, data in _anthropic_events(b"".join(ANTHROPIC_STREAM))]
    # The empty input_json_delta carries nothing and is not re-sent; cumulative usage is
    # complete in message_delta.
    expected = [
        e for e in expected if e[1].get("delta") != {"type": "input_json_delta", "partial_json": ""}
    ]
    expected[-2][1]["usage"] = {
        "input_tokens": 12,
        "output_tokens": 89,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 200,
    }
    assert _anthropic_events(raw) == expected


def test_openai_client_that_did_not_ask_for_usage_gets_no_usage_chunk():
    chunks = _openai_chunks(
        _translate(ANTHROPIC_STREAM, "anthropic", "openai", include_usage=False)
    )
    assert all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)


def test_translator_reports_usage_and_finish_for_settlement():
    translator = StreamTranslator("anthropic", "openai")
    for event in ANTHROPIC_STREAM:
        translator.feed(event)
    assert translator.finished
    assert translator.finish_reason == "tool_calls"
    assert translator.usage == Usage(312, 89, 200, 100)


def test_translator_does_not_take_message_start_input_counts_for_the_whole_usage():
    translator = StreamTranslator("anthropic", "openai")
    for event in ANTHROPIC_STREAM[:8]:  # broken off before message_delta
        translator.feed(event)
    assert translator.usage is None
    assert not translator.finished


def test_translator_reports_no_usage_when_the_upstream_sent_none():
    translator = StreamTranslator("openai", "anthropic")
    raw = b"".join(translator.feed(event) for event in OPENAI_STREAM[:3])
    raw += translator.close()  # an upstream that stopped without [DONE]
    assert translator.usage is None
    assert translator.finished
    names = [name for name, _ in _anthropic_events(raw)]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert _anthropic_events(raw)[-2][1]["delta"]["stop_reason"] == "end_turn"


# --- event framing details and errors -------------------------------------------------------------


def test_decoders_take_parsed_events_as_well_as_bytes():
    from_bytes = openai.stream_to_ir()
    from_dicts = openai.stream_to_ir()
    for event in OPENAI_STREAM[:-1]:
        parsed = orjson.loads(event.removeprefix(b"data: "))
        assert from_bytes.feed(event) == from_dicts.feed(parsed)
    from_bytes = anthropic.stream_to_ir()
    from_dicts = anthropic.stream_to_ir()
    for event in ANTHROPIC_STREAM:
        parsed = orjson.loads(event.split(b"\ndata: ")[1])
        assert from_bytes.feed(event) == from_dicts.feed(parsed)


def test_crlf_framing_comments_and_multiline_data_are_read():
    decoder = anthropic.stream_to_ir()
    assert decoder.feed(b": keep-alive\r\n\r\n") == []
    event = (
        b'event: message_start\r\ndata: {"type":"message_start",\r\n'
        b'data: "message":{"id":"m"}}\r\n\r\n'
    )
    assert decoder.feed(event) == [Start("m", "", Usage())]


def test_azure_prompt_filter_chunk_does_not_start_the_stream():
    decoder = openai.stream_to_ir()
    azure_first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    assert decoder.feed(azure_first) == []
    assert decoder.feed(OPENAI_STREAM[0]) == [Start("chatcmpl-abc", "gpt-4.1")]


def test_upstream_error_events_are_reframed_for_the_client():
    error = _event(
        "error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    )
    raw = _translate([ANTHROPIC_STREAM[0], error], "anthropic", "openai")
    assert raw.endswith(
        b'data: {"error":{"message":"Overloaded","type":"overloaded_error","param":null,'
        b'"code":null}}\n\n'
    )
    openai_error = b'data: {"error":{"message":"server had an error","type":"server_error"}}\n\n'
    raw = _translate([OPENAI_STREAM[0], OPENAI_STREAM[1], openai_error], "openai", "anthropic")
    assert _anthropic_events(raw)[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "server had an error"}},
    )


def test_anthropic_sdk_raises_on_a_translated_error_event():
    openai_error = b'data: {"error":{"message":"rate limited","type":"rate_limit_error"}}\n\n'
    raw = _translate([OPENAI_STREAM[0], openai_error], "openai", "anthropic")
    client = anthropic_sdk.Anthropic(api_key="test")
    stream = AnthropicStream(
        cast_to=RawMessageStreamEvent, response=_response(raw, "/v1/messages"), client=client
    )
    with pytest.raises(anthropic_sdk.APIStatusError, match="rate limited"):
        list(stream)


@pytest.mark.parametrize("codec", [openai, anthropic])
def test_a_malformed_upstream_event_becomes_an_error_event(codec):
    events = codec.stream_to_ir().feed(b"data: {not json\n\n")
    assert len(events) == 1
    assert type(events[0]) is Error
    assert events[0].type == "api_error"


def test_server_tool_blocks_are_skipped_for_openai_clients():
    decoder = anthropic.stream_to_ir()
    start = {"type": "content_block_start", "index": 0}
    server_block = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {},
    }
    assert decoder.feed({**start, "content_block": server_block}) == []
    delta = {"type": "input_json_delta", "partial_json": '{"q":"x"}'}
    assert decoder.feed({"type": "content_block_delta", "index": 0, "delta": delta}) == []
    assert decoder.feed({"type": "content_block_stop", "index": 0}) == []


def test_reasoning_only_events_produce_no_openai_bytes():
    encoder = openai.stream_from_ir()
    encoder.encode(Start("x", "m"))
    assert encoder.encode(ThinkingDelta(0, "hmm")) == b""
    assert encoder.encode(BlockStop(0)) == b""
    assert encoder.encode(Usage(1, 2)) == b""
