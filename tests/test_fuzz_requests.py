"""Property-based tests of request translation across wire formats (routing/formats/).

A client's body (OpenAI chat or Anthropic Messages, as the dialects accept it) is decoded into
the IR, encoded for every other provider format, and decoded back from that format. What a
client relies on must survive the trip: the conversation's roles and the order of its text,
tool calls' names and arguments (as JSON), tool results, images, max_tokens, temperature,
top_p, stop sequences, tools and tool_choice. What a format cannot carry is either refused
(Unsupported, naming the parameter) or listed as dropped, exactly as each codec documents it.
"""

import orjson
import pytest
from hypothesis import given

from routing.formats import FORMATS, Defaults, Unsupported
from routing.formats.ir import Image, Text, Thinking, ToolCall, ToolResult

from . import helpers_fuzz as f

SOURCES = {"openai": f.openai_chat, "anthropic": f.anthropic_chat}
PAIRS = [(s, t) for s in SOURCES for t in FORMATS if t != s]
DEFAULTS = Defaults(max_tokens=1000, max_tokens_field="max_tokens")


def _args(text: str):
    return orjson.loads(text) if text.strip() else {}


def _blank(part, target: str) -> bool:
    # Empty text parts are dropped by every encoder but OpenAI's (the Messages API and Gemini
    # refuse them); Converse refuses blank ones too.
    if type(part) is not Text:
        return False
    return not part.text.strip() if target == "bedrock" else not part.text


def _part(part, target: str):
    kind = type(part)
    if kind is Text:
        return ("text", part.text)
    if kind is Image:
        return ("image", part.url, part.media_type, part.data)
    if kind is ToolCall:
        return ("call", part.name, _args(part.arguments))
    if kind is ToolResult:
        if target == "gemini":
            # A functionResponse is a JSON object matched to its call by the function's name:
            # a text result is wrapped in it ({"content": text}), the call id is synthesized.
            return ("result",)
        content = [_part(p, target) for p in part.content if not _blank(p, target)]
        if target == "bedrock" and not content:
            content = [("text", "(empty)")]  # Converse needs content in a result
        # OpenAI's tool messages have no error flag: dropped and listed (checked below).
        return ("result", part.tool_call_id, content, part.is_error and target != "openai")
    # An empty signature is none (Converse leaves it out).
    return ("thinking", part.text, part.signature or None, part.redacted)


def conversation(req, target: str) -> list[tuple]:
    """The (role, part) sequence that survives the trip. Consecutive messages of one role merge
    (the Messages API, Gemini and Converse alternate roles), which this flat view does not see.
    OpenAI's assistant message holds its text before its tool calls; only the Messages API and
    Converse take thinking back (elsewhere it is dropped and listed)."""
    out = []
    for message in req.messages:
        parts = [p for p in message.parts if not _blank(p, target)]
        if target in ("openai", "gemini"):
            parts = [p for p in parts if type(p) is not Thinking]
        if target == "openai" and message.role == "assistant":
            parts.sort(key=lambda p: type(p) is ToolCall)
        out.extend((message.role, _part(p, target)) for p in parts)
    return out


def _expected_refusals(req, target: str) -> set[str]:
    """The parameters (or message prefixes) a translation to `target` is documented to refuse
    for this request."""
    found: set[str] = set()
    if target != "openai":
        if req.n is not None and req.n > 1:
            found.add("n")
        if req.logprobs or req.top_logprobs:
            found.update(("logprobs", "top_logprobs"))
    if target == "anthropic" and req.temperature is not None and req.temperature > 1:
        found.add("temperature")
    if req.response_format is not None and (
        target == "bedrock" or (target == "anthropic" and req.response_format.type != "json_schema")
    ):
        found.add("response_format")
    called: set[str] = set()
    for message in req.messages:
        for part in message.parts:
            if type(part) is ToolCall:
                called.add(part.id)
            elif (
                type(part) is ToolResult and target == "gemini" and part.tool_call_id not in called
            ):
                found.add(f"messages[{message.index}].tool_call_id")  # needs the call's name
            elif type(part) is Image and part.url is not None and target == "bedrock":
                found.add(f"messages[{message.index}].content")  # Converse fetches no URLs
    return found


def _dropped_by_design(req, target: str) -> set[str]:
    names = {
        "openai": ("top_k",),
        "anthropic": ("seed", "presence_penalty", "frequency_penalty"),
        "gemini": ("user",),
        "bedrock": ("seed", "presence_penalty", "frequency_penalty", "top_k", "user"),
    }[target]
    found = {name for name in names if getattr(req, name) is not None}
    if target == "openai" and any(
        type(p) is ToolResult and p.is_error for m in req.messages for p in m.parts
    ):
        found.add("tool_result.is_error")
    return found


def _tool_choice_after(req, target: str, has_tool_blocks: bool):
    choice = req.tool_choice
    if target == "anthropic" and choice is None and req.parallel_tool_calls is False and req.tools:
        return "auto"  # disable_parallel_tool_use rides on a tool_choice
    if target == "bedrock" and (not req.tools or choice == "none"):
        return None  # no toolConfig, or "none", which Converse lacks (listed as dropped)
    return choice


def translate(body: dict, source: str, target: str):
    """(IR before, body for target, dropped, IR read back from it), or the Unsupported raised."""
    before = FORMATS[source].request_to_ir(body)
    encoded, dropped = FORMATS[target].request_from_ir(before, model="up", defaults=DEFAULTS)
    # Through JSON, as it goes on the wire.
    after = FORMATS[target].request_to_ir(orjson.loads(orjson.dumps(encoded)))
    return before, encoded, dropped, after


def _texts(parts) -> list[str]:
    return [p.text for p in parts]


@pytest.mark.parametrize(("source", "target"), PAIRS)
@given(data=f.st.data())
def test_a_translated_request_keeps_what_the_client_relies_on(source, target, data):
    body = data.draw(SOURCES[source])
    before = FORMATS[source].request_to_ir(body)
    expected = _expected_refusals(before, target)
    try:
        _, _, dropped, after = translate(body, source, target)
    except Unsupported as exc:
        assert exc.param is not None and any(exc.param.startswith(p) for p in expected), exc
        return
    assert not expected, expected
    assert conversation(after, target) == conversation(before, target)
    system = [
        t for t in _texts(before.system) if not _blank(Text(t), target) or target != "bedrock"
    ]
    assert _texts(after.system) == system
    max_tokens = before.max_tokens
    if max_tokens is None and target == "anthropic":
        max_tokens = DEFAULTS.max_tokens  # the Messages API requires one
    assert after.max_tokens == max_tokens
    assert (after.temperature, after.top_p, after.stop) == (
        before.temperature,
        before.top_p,
        before.stop,
    )
    has_tool_blocks = any(
        type(p) in (ToolCall, ToolResult) for m in before.messages for p in m.parts
    )
    tools = [(t.name, t.parameters) for t in before.tools]
    if (
        target == "bedrock"
        and not (before.tools and has_tool_blocks)
        and before.tool_choice == "none"
    ):
        tools = []  # no toolConfig at all: the model cannot call a tool, "none" exactly
    if target == "bedrock" and not before.tools and has_tool_blocks:
        # Converse needs the tools a history calls declared: with an open schema.
        called = [p.name for m in before.messages for p in m.parts if type(p) is ToolCall]
        tools = [(n, {"type": "object"}) for n in dict.fromkeys(called or ["none"])]
    assert [(t.name, t.parameters) for t in after.tools] == tools
    assert after.tool_choice == _tool_choice_after(before, target, has_tool_blocks)
    # What the target has no field for is listed, never silently lost.
    assert _dropped_by_design(before, target) <= set(dropped)


@pytest.mark.parametrize("source", SOURCES)
@given(data=f.st.data())
def test_the_max_tokens_default_fills_in_only_where_the_format_requires_it(source, data):
    body = data.draw(SOURCES[source])
    req = FORMATS[source].request_to_ir(body)
    req.max_tokens = None
    try:
        encoded, _ = FORMATS["anthropic"].request_from_ir(req, model="up", defaults=DEFAULTS)
    except Unsupported:
        return
    assert encoded["max_tokens"] == DEFAULTS.max_tokens  # the Messages API requires it


@pytest.mark.parametrize(("source", "target"), PAIRS)
@given(data=f.st.data())
def test_tool_call_ids_survive_where_the_format_has_them(source, target, data):
    body = data.draw(SOURCES[source])
    try:
        before, _, _, after = translate(body, source, target)
    except Unsupported:
        return

    def ids(req):
        return [
            p.id if type(p) is ToolCall else p.tool_call_id
            for m in req.messages
            for p in m.parts
            if type(p) in (ToolCall, ToolResult)
        ]

    if target == "gemini":
        # Gemini matches results to calls by function name; ids are synthesized (documented
        # in gemini_output): only the count survives.
        assert len(ids(after)) == len(ids(before))
    else:
        assert ids(after) == ids(before)
