"""Anthropic's answers <-> the IR: messages, Messages streams, error shapes.

The stream (docs.anthropic.com/en/api/messages-streaming): each event is `event: <type>` plus
`data: {json}` whose `type` repeats the name. message_start carries the Message with empty
content and the input usage; each content block is content_block_start, content_block_delta
events (text_delta, input_json_delta with `partial_json`, thinking_delta, signature_delta) and
content_block_stop; message_delta carries stop_reason, stop_sequence and the cumulative usage;
message_stop ends it. `ping` may come anywhere (the docs show one after the first
content_block_start); `error` reports a failure mid-stream (overloaded_error where a
non-streamed call would have had HTTP 529).
"""

import orjson

from .errors import Malformed, anthropic_stream_error
from .ir import (
    BlockStop,
    ChatResponse,
    End,
    Error,
    Finish,
    Start,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from .sse import load_json, read_event

# pause_turn (a server-tool turn cut short) and model_context_window_exceeded have no IR word
# of their own; they read as the nearest one.
_FINISH_IN = {
    "end_turn": "stop",
    "max_tokens": "length",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
_FINISH_OUT = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def finish_to_ir(reason: str | None) -> str | None:
    return _FINISH_IN.get(reason, "stop") if reason is not None else None


def finish_from_ir(reason: str | None) -> str:
    return _FINISH_OUT.get(reason, "end_turn") if reason is not None else "end_turn"


def usage_to_ir(usage: dict | None) -> Usage:
    """Anthropic counts cached prompt tokens apart from `input_tokens`; the IR (like OpenAI's
    prompt_tokens) counts every prompt token in input_tokens."""
    if not usage:
        return Usage()
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(usage.get("input_tokens") or 0) + read + write,
        output_tokens=usage.get("output_tokens") or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_ir(usage: Usage) -> dict:
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - read - write),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def tool_input(arguments: str) -> dict | None:
    if not arguments.strip():
        return {}  # a call without arguments, as OpenAI-compatible servers sometimes send it
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- responses ------------------------------------------------------------------------------------


def response_to_ir(body: dict) -> ChatResponse:
    try:
        parts: list = []
        for block in body["content"]:
            kind = block.get("type")
            if kind == "text":
                parts.append(Text(block["text"]))
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                parts.append(ToolCall(block["id"], block["name"], arguments))
            elif kind == "thinking":
                parts.append(Thinking(block.get("thinking") or "", block.get("signature")))
            elif kind == "redacted_thinking":
                parts.append(Thinking(redacted=block.get("data") or ""))
            # Server-tool blocks (web search calls and results) have no equivalent: skipped.
        return ChatResponse(
            id=body.get("id") or "",
            model=body.get("model") or "",
            parts=parts,
            finish_reason=finish_to_ir(body.get("stop_reason")),
            usage=usage_to_ir(body.get("usage")),
            stop_sequence=body.get("stop_sequence"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise Malformed(f"not a message: {exc!r}") from None


def response_from_ir(resp: ChatResponse, *, model: str) -> dict:
    content: list[dict] = []
    for part in resp.parts:
        kind = type(part)
        if kind is Text:
            if part.text:
                content.append({"type": "text", "text": part.text})
        elif kind is ToolCall:
            # Arguments that are not a JSON object (a model's broken output) become {}: the
            # client's tool then reports the missing fields, instead of the SDK failing here.
            input_ = tool_input(part.arguments) or {}
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": input_})
        elif kind is Thinking:
            if part.redacted is not None:
                content.append({"type": "redacted_thinking", "data": part.redacted})
            else:
                thinking = {"type": "thinking", "thinking": part.text}
                content.append({**thinking, "signature": part.signature or ""})
    return {
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": finish_from_ir(resp.finish_reason),
        "stop_sequence": resp.stop_sequence,
        "usage": usage_from_ir(resp.usage),
    }


# --- streams --------------------------------------------------------------------------------------


class StreamDecoder:
    """Feeds on one SSE event (bytes) or its parsed JSON at a time; returns the IR events it
    makes. Block indexes are Anthropic's own. Blocks of server tools (web search calls and
    results) have no IR equivalent and are skipped with their deltas."""

    __slots__ = ("_ended", "_skipped", "_start_usage")

    def __init__(self) -> None:
        self._ended = False
        self._skipped: set[int] = set()
        self._start_usage: dict = {}

    def feed(self, event: bytes | bytearray | dict) -> list:
        if isinstance(event, dict):
            data = event
        else:
            _, raw = read_event(event)
            if raw is None:
                return []
            try:
                data = load_json(raw)
            except Malformed as exc:
                return [Error("api_error", f"the upstream sent a malformed event ({exc})")]
        kind = data.get("type")
        if kind == "content_block_delta":
            index = data.get("index", 0)
            if index in self._skipped:
                return []
            delta = data.get("delta") or {}
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                return [TextDelta(index, delta.get("text") or "")]
            if delta_kind == "input_json_delta":
                fragment = delta.get("partial_json")
                return [ToolCallDelta(index, fragment)] if fragment else []
            if delta_kind == "thinking_delta":
                return [ThinkingDelta(index, delta.get("thinking") or "")]
            if delta_kind == "signature_delta":
                return [ThinkingDelta(index, signature=delta.get("signature"))]
            return []  # citations_delta and any newer kind
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "content_block_stop":
            index = data.get("index", 0)
            return [] if index in self._skipped else [BlockStop(index)]
        if kind == "message_start":
            message = data.get("message") or {}
            self._start_usage = message.get("usage") or {}
            usage = usage_to_ir(self._start_usage)
            return [Start(message.get("id") or "", message.get("model") or "", usage)]
        if kind == "message_delta":
            out: list = []
            delta = data.get("delta") or {}
            if delta.get("stop_reason"):
                reason = finish_to_ir(delta["stop_reason"])
                out.append(Finish(reason, delta.get("stop_sequence")))
            # Counts here are cumulative; the ones it leaves out keep message_start's value.
            reported = {k: v for k, v in (data.get("usage") or {}).items() if v is not None}
            out.append(usage_to_ir({**self._start_usage, **reported}))
            return out
        if kind == "message_stop":
            return self.close()
        if kind == "error":
            error = data.get("error") or {}
            message = str(error.get("message") or "upstream error")
            return [Error(error.get("type") or "api_error", message)]
        return []  # ping, and event types added later (the docs ask clients to ignore them)

    def _block_start(self, index: int, block: dict) -> list:
        kind = block.get("type")
        if kind == "text":
            return [TextDelta(index, block.get("text") or "")]
        if kind == "tool_use":
            return [ToolCallStart(index, block.get("id") or "", block.get("name") or "")]
        if kind == "thinking":
            return [ThinkingDelta(index, block.get("thinking") or "")]
        if kind == "redacted_thinking":
            return [ThinkingDelta(index, redacted=block.get("data") or "")]
        self._skipped.add(index)
        return []

    def close(self) -> list:
        """The events that end the stream (message_stop, or an upstream that just stopped)."""
        if self._ended:
            return []
        self._ended = True
        return [End()]


def _event(name: bytes, data: dict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_PING = _event(b"ping", {"type": "ping"})
_STOP = _event(b"message_stop", {"type": "message_stop"})


class StreamEncoder:
    """Encodes IR events as Messages stream events. Blocks are renumbered 0, 1, ... in the order
    they open (the SDKs index their content list by it), and each is closed before the next
    opens. stop_reason and usage are held until End: OpenAI sends the finish reason before the
    usage, the Messages stream sends both in one message_delta."""

    __slots__ = (
        "_blocks",
        "_finish",
        "_model",
        "_open",
        "_pinged",
        "_started",
        "_stop_sequence",
        "_usage",
    )

    def __init__(self, *, model: str | None = None) -> None:
        self._model = model
        self._started = False
        self._pinged = False
        self._blocks: dict[int, int] = {}  # IR block index -> Anthropic block index
        self._open: int | None = None  # the open block's IR index
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._usage = Usage()

    def _start(self, id_: str = "", model: str = "") -> bytes:
        self._started = True
        message = {
            "id": id_,
            "type": "message",
            "role": "assistant",
            "model": self._model or model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_from_ir(self._usage),
        }
        return _event(b"message_start", {"type": "message_start", "message": message})

    def _close_open(self) -> bytes:
        if self._open is None:
            return b""
        index = self._blocks[self._open]
        self._open = None
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})

    def _ensure(self, index: int, block: dict) -> tuple[bytes, int]:
        """Opens block `index` unless open already: what to send first, and its number."""
        found = self._blocks.get(index)
        if found is not None:
            return b"", found
        head = b"" if self._started else self._start()
        head += self._close_open()
        found = self._blocks[index] = len(self._blocks)
        self._open = index
        start = {"type": "content_block_start", "index": found, "content_block": block}
        head += _event(b"content_block_start", start)
        if not self._pinged:
            self._pinged = True
            head += _PING
        return head, found

    def _delta(self, index: int, delta: dict) -> bytes:
        return _event(
            b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def encode(self, event) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            head, index = self._ensure(event.index, {"type": "text", "text": ""})
            if not event.text:
                return head
            return head + self._delta(index, {"type": "text_delta", "text": event.text})
        if kind is ToolCallDelta:
            index = self._blocks.get(event.index)
            if index is None:
                return b""  # a fragment of a call never started
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            return self._delta(index, delta)
        if kind is ToolCallStart:
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            return self._ensure(event.index, block)[0]
        if kind is ThinkingDelta:
            return self._thinking(event)
        if kind is BlockStop:
            return self._close_open() if event.index == self._open else b""
        if kind is Start:
            if self._started:
                return b""
            if event.usage is not None:
                self._usage = event.usage
            return self._start(event.id, event.model)
        if kind is Finish:
            self._finish, self._stop_sequence = event.reason, event.stop_sequence
            return b""
        if kind is Usage:
            self._usage = event
            return b""
        if kind is End:
            head = b"" if self._started else self._start()
            head += self._close_open()
            delta = {
                "stop_reason": finish_from_ir(self._finish),
                "stop_sequence": self._stop_sequence,
            }
            body = {"type": "message_delta", "delta": delta, "usage": usage_from_ir(self._usage)}
            return head + _event(b"message_delta", body) + _STOP
        if kind is Error:
            return anthropic_stream_error(0, event.type, event.message)
        raise TypeError(f"not a stream event: {event!r}")

    def _thinking(self, event: ThinkingDelta) -> bytes:
        if event.redacted is not None:
            block = {"type": "redacted_thinking", "data": event.redacted}
            return self._ensure(event.index, block)[0]
        block = {"type": "thinking", "thinking": "", "signature": ""}
        out, index = self._ensure(event.index, block)
        if event.text:
            out += self._delta(index, {"type": "thinking_delta", "thinking": event.text})
        if event.signature:
            out += self._delta(index, {"type": "signature_delta", "signature": event.signature})
        return out


def stream_to_ir() -> StreamDecoder:
    return StreamDecoder()


def stream_from_ir(*, model: str | None = None, include_usage: bool = True) -> StreamEncoder:
    """`model` replaces the one the upstream reported. Usage is part of every Messages stream,
    so `include_usage` (accepted for a uniform signature) changes nothing."""
    return StreamEncoder(model=model)
