"""Property-based tests of answers and streams across wire formats (routing/formats/).

An answer (text, tool calls, thinking, finish reason, usage) generated as the IR is encoded in
each format and decoded back; a stream (text deltas, tool calls whose arguments arrive in
fragments, the finish, the usage) is encoded in each format, split into its events, decoded
back, and also translated into each client format (StreamTranslator, as the relay does) and
reassembled there. The text, the tool calls (names, JSON arguments), the usage numbers and the
finish reason must come out as they went in, less what each format documents it cannot carry.

Whatever an upstream sends instead (arbitrary JSON bodies and stream events), decoding raises
nothing but Malformed, which the gateway answers with a 502 or a stream error event.
"""

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy.dialects.anthropic import UsageSniffer
from gateway.proxy.sse import EventBuffer
from routing.formats import FORMATS, Malformed, StreamTranslator
from routing.formats.ir import (
    BlockStop,
    ChatResponse,
    End,
    Finish,
    Start,
    Text,
    TextDelta,
    Thinking,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from routing.providers import anthropic as anthropic_adapter
from routing.providers import gemini as gemini_adapter

from . import helpers_fuzz as f

NAMES = sorted(FORMATS)
CLIENTS = ("openai", "anthropic")  # the formats the gateway answers in
REASONS = ("stop", "length", "tool_calls", "content_filter", "stop_sequence")

small = st.integers(min_value=0, max_value=2**30)
usages = st.builds(
    lambda read, write, rest, out: Usage(read + write + rest, out, read, write),
    small,
    small,
    small,
    small,
)
calls = st.builds(ToolCall, f.ids, f.names, f.arguments)
thinking = st.builds(Thinking, f.texts, f.nonempty | st.none())
answers = st.builds(
    lambda parts, reason, usage: ChatResponse(
        id="resp_1", model="m", parts=parts, finish_reason=reason, usage=usage
    ),
    st.lists(st.builds(Text, f.texts) | calls | thinking, max_size=6),
    st.sampled_from(REASONS),
    usages,
)


def expected_usage(usage: Usage, name: str) -> Usage:
    # OpenAI's and Gemini's usage have no count of tokens written to the prompt cache.
    if name in ("openai", "gemini"):
        return Usage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, 0)
    return usage


def expected_finish(reason: str, name: str, called: bool) -> str:
    if name == "openai" and reason == "stop_sequence":
        return "stop"  # OpenAI says stop for a stop sequence too
    if name == "gemini" and reason in ("stop", "stop_sequence", "tool_calls"):
        return "tool_calls" if called else "stop"  # Gemini says STOP; the calls tell
    return reason


def shape(parts, name: str) -> list[tuple]:
    """What survives of an answer's parts: OpenAI's message joins the text and puts it before
    the tool calls, and has no thinking; Gemini synthesizes call ids (call_<n>) and drops
    redacted thinking; every format drops empty text."""
    out: list[tuple] = []
    n = 0
    for part in parts:
        kind = type(part)
        if kind is Text and part.text:
            out.append(("text", part.text))
        elif kind is ToolCall:
            id_ = f"call_{n}" if name == "gemini" else part.id
            n += 1
            out.append(("call", id_, part.name, orjson.loads(part.arguments or "{}")))
        elif kind is Thinking and name != "openai":
            if name == "gemini" and part.redacted is not None:
                continue
            out.append(("thinking", part.text, part.signature or None, part.redacted))
    if name == "openai":
        text = "".join(p[1] for p in out if p[0] == "text")
        return ([("text", text)] if text else []) + [p for p in out if p[0] == "call"]
    return out


@pytest.mark.parametrize("name", NAMES)
@given(answer=answers)
def test_an_answer_keeps_its_text_calls_usage_and_finish_in_every_format(name, answer):
    codec = FORMATS[name]
    body = orjson.loads(orjson.dumps(codec.response_from_ir(answer, model="m")))
    back = codec.response_to_ir(body)
    assert shape(back.parts, name) == shape(answer.parts, name)
    assert back.usage == expected_usage(answer.usage, name)
    called = any(type(p) is ToolCall for p in answer.parts)
    assert back.finish_reason == expected_finish(answer.finish_reason, name, called)


@pytest.mark.parametrize("name", NAMES)
@given(body=f.json_objects)
def test_an_arbitrary_upstream_answer_is_read_or_malformed(name, body):
    with contextlib.suppress(Malformed):
        FORMATS[name].response_to_ir(body)


# --- streams --------------------------------------------------------------------------------------


@st.composite
def scripts(draw):
    """(IR events of one streamed answer, its blocks): text blocks cut in chunks, tool calls
    whose JSON arguments are cut anywhere."""
    blocks = draw(
        st.lists(
            st.tuples(st.just("text"), st.lists(f.nonempty, min_size=1, max_size=3))
            | st.tuples(st.just("call"), f.ids, f.names, f.arguments),
            max_size=4,
        )
    )
    events: list = [Start("resp_1", "m")]
    for index, block in enumerate(blocks):
        if block[0] == "text":
            events.extend(TextDelta(index, chunk) for chunk in block[1])
        else:
            _, id_, name, arguments = block
            events.append(ToolCallStart(index, id_, name))
            cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arguments) - 1)), max_size=3)))
            pieces = [
                arguments[a:b] for a, b in zip([0, *cuts], [*cuts, len(arguments)], strict=True)
            ]
            events.extend(ToolCallDelta(index, piece) for piece in pieces if piece)
        events.append(BlockStop(index))
    reason = draw(st.sampled_from(REASONS))
    events += [Finish(reason), draw(usages), End()]
    return events, blocks


def encode(name: str, events: list) -> list:
    """The format's events, one per SSE event (Bedrock's as the adapter's (type, payload))."""
    encoder = FORMATS[name].stream_from_ir(include_usage=True)
    if name == "bedrock":
        return [item for event in events for item in encoder.encode(event)]
    raw = b"".join(encoder.encode(event) for event in events)
    return [bytes(e) for e in EventBuffer(1 << 24).feed(raw)]


def decode(name: str, wire: list) -> list:
    decoder = FORMATS[name].stream_to_ir()
    out = [event for item in wire for event in decoder.feed(item)]
    return out + decoder.close()


def reassemble(events: list, name: str) -> dict:
    blocks: dict[int, list] = {}
    usage = finish = None
    for event in events:
        kind = type(event)
        if kind is TextDelta and event.text:
            blocks.setdefault(event.index, ["text", ""])[1] += event.text
        elif kind is ToolCallStart:
            blocks[event.index] = ["call", event.id, event.name, ""]
        elif kind is ToolCallDelta and event.index in blocks:
            blocks[event.index][3] += event.arguments
        elif kind is Usage:
            usage = event
        elif kind is Finish:
            finish = event.reason
    merged: list = []
    for _, block in sorted(blocks.items()):
        if block[0] == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + block[1])
        elif block[0] == "text":
            merged.append(("text", block[1]))
        else:
            merged.append(("call", block[1], block[2], orjson.loads(block[3] or "{}")))
    assert type(events[-1]) is End
    return {"parts": merged, "usage": usage, "finish": finish}


def expected_stream(blocks, events, names: tuple[str, ...]) -> dict:
    parts: list = []
    n = 0
    for block in blocks:
        if block[0] == "text":
            text = "".join(block[1])
            if parts and parts[-1][0] == "text":
                parts[-1] = ("text", parts[-1][1] + text)
            else:
                parts.append(("text", text))
        else:
            id_ = f"call_{n}" if "gemini" in names else block[1]
            n += 1
            parts.append(("call", id_, block[2], orjson.loads(block[3])))
    called = n > 0
    usage, finish = events[-2], events[-3].reason
    for name in names:
        usage = expected_usage(usage, name)
        finish = expected_finish(finish, name, called)
    return {"parts": parts, "usage": usage, "finish": finish}


@pytest.mark.parametrize("name", NAMES)
@given(script=scripts())
def test_a_stream_reassembles_to_the_same_answer_in_every_format(name, script):
    events, blocks = script
    back = reassemble(decode(name, encode(name, events)), name)
    assert back == expected_stream(blocks, events, (name,))


@pytest.mark.parametrize(("source", "client"), [(s, c) for s in NAMES for c in CLIENTS if s != c])
@given(script=scripts())
def test_a_stream_translated_for_the_client_reassembles_to_the_same_answer(source, client, script):
    events, blocks = script
    translator = StreamTranslator(source, client, include_usage=True)
    raw = b"".join(translator.feed(item) for item in encode(source, events)) + translator.close()
    assert translator.finished
    wire = [bytes(e) for e in EventBuffer(1 << 24).feed(raw)]
    back = reassemble(decode(client, wire), client)
    assert back == expected_stream(blocks, events, (source, client))
    assert translator.usage == expected_usage(events[-2], source)


# --- whatever an upstream sends -------------------------------------------------------------------

upstream_events = st.one_of(
    f.json_values.map(lambda v: b"data: " + orjson.dumps(v) + b"\n\n"),
    st.binary(max_size=64).map(lambda b: b"data: " + b + b"\n\n"),
)


def _as_sse(item) -> bytes:
    if isinstance(item, tuple):  # Bedrock's (type, payload), as the adapter re-frames it
        return f"event: {item[0]}\n".encode() + b"data: " + orjson.dumps(item[1]) + b"\n\n"
    return item


@st.composite
def broken_streams(draw, name: str):
    """A valid stream of format `name` with one value of one event replaced or removed."""
    events, _ = draw(scripts())
    wire = [_as_sse(item) for item in encode(name, events)]
    at = draw(st.integers(0, len(wire) - 1))
    head, _, data = wire[at].rstrip(b"\r\n").partition(b"data: ")
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:  # data: [DONE]
        payload = None
    if isinstance(payload, dict) and payload:
        broken = draw(f.broken(st.just(payload)))
        wire[at] = head + b"data: " + orjson.dumps(broken) + b"\n\n"
    else:
        wire[at] = draw(upstream_events)
    return wire


@pytest.mark.parametrize(("source", "client"), [(s, c) for s in NAMES for c in CLIENTS if s != c])
@given(data=st.data())
def test_arbitrary_upstream_stream_events_translate_or_are_malformed(source, client, data):
    events = data.draw(broken_streams(source) | st.lists(upstream_events, max_size=4))
    translator = StreamTranslator(source, client, include_usage=True)
    try:
        for event in events:
            assert isinstance(translator.feed(event), bytes)
        translator.close()
    except Malformed:
        pass


@given(events=broken_streams("anthropic") | st.lists(upstream_events, max_size=4))
def test_arbitrary_events_of_a_relayed_anthropic_stream_are_sniffed_or_malformed(events):
    sniffer = UsageSniffer()
    try:
        for event in events:
            sniffer.feed(event)
    except Malformed:
        pass
    assert sniffer.usage is None or isinstance(sniffer.usage, Usage)


# The adapters read a non-streamed answer's usage themselves (what the request is billed).
usage_dicts = st.dictionaries(
    st.sampled_from(
        [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "promptTokenCount",
            "candidatesTokenCount",
            "cachedContentTokenCount",
        ]
    ),
    f.json_values,
    max_size=4,
)


@given(usage=usage_dicts)
def test_an_adapters_usage_is_integer_counts_or_none(usage):
    for found in (
        anthropic_adapter.usage_of({"usage": usage}),
        gemini_adapter.usage_of({"usageMetadata": usage}),
    ):
        if found is not None:
            counts = (found.input_tokens, found.output_tokens, found.cached_tokens)
            assert all(type(count) is int for count in counts), found
