"""OpenAI's answers <-> the IR: chat completions, chat.completion.chunk streams, error shapes.

The stream (platform.openai.com/docs/api-reference/chat-streaming): `data: {chunk}` events,
ended by `data: [DONE]`. The first chunk's delta carries the role; text comes as
`delta.content`; a tool call as `delta.tool_calls[{index, id, type, function: {name,
arguments}}]`, where only the first fragment of a call has its id and name and later ones only
`index` and an `arguments` fragment; the finish reason comes on a chunk with an empty delta; with
`stream_options.include_usage` a last chunk with `choices: []` carries the usage, and every chunk
before it has `"usage": null`.
"""

import time

import orjson

from .errors import Malformed, openai_stream_error
from .ir import (
    BlockStop,
    ChatResponse,
    End,
    Error,
    Finish,
    Start,
    Text,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from .sse import load_json, read_event

_DONE = b"data: [DONE]\n\n"

# The vocabulary the response and stream codecs share (openai.py re-exports it).
_FINISH_IN = {"function_call": "tool_calls"}  # the rest are the IR's own words
_FINISH_OUT = {"stop_sequence": "stop"}


def finish_to_ir(reason: str | None) -> str | None:
    return _FINISH_IN.get(reason, reason) if reason is not None else None


def finish_from_ir(reason: str | None) -> str | None:
    return _FINISH_OUT.get(reason, reason) if reason is not None else None


def usage_to_ir(usage: dict | None) -> Usage:
    """prompt_tokens already counts the cached ones (prompt_tokens_details.cached_tokens)."""
    if not usage:
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cache_read_tokens=details.get("cached_tokens") or 0,
    )


def usage_from_ir(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


# --- responses ------------------------------------------------------------------------------------


def response_to_ir(body: dict) -> ChatResponse:
    try:
        choice = body["choices"][0]
        message = choice["message"]
        parts: list = []
        content = message.get("content")
        if isinstance(content, str):
            if content:
                parts.append(Text(content))
        elif content:
            parts.extend(Text(part["text"]) for part in content if part.get("type") == "text")
        if message.get("refusal"):
            parts.append(Text(message["refusal"]))
        for call in message.get("tool_calls") or ():
            function = call["function"]
            parts.append(ToolCall(call["id"], function["name"], function.get("arguments") or ""))
        return ChatResponse(
            id=body.get("id") or "",
            model=body.get("model") or "",
            parts=parts,
            finish_reason=finish_to_ir(choice.get("finish_reason")),
            usage=usage_to_ir(body.get("usage")),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Malformed(f"not a chat completion: {exc!r}") from None


def response_from_ir(resp: ChatResponse, *, model: str) -> dict:
    text = "".join(part.text for part in resp.parts if type(part) is Text)
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in resp.parts
        if type(p) is ToolCall
    ]
    message: dict = {
        "role": "assistant",
        "content": text or (None if calls else ""),
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": resp.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_from_ir(resp.finish_reason) or "stop",
            }
        ],
        "usage": usage_from_ir(resp.usage),
    }


# --- streams --------------------------------------------------------------------------------------


class StreamDecoder:
    """Feeds on one SSE event (bytes) or its parsed JSON at a time; returns the IR events it
    makes. Blocks are numbered in order of appearance: text, then each tool call by its OpenAI
    index. Only choice 0 is read (n > 1 is never asked of a translated stream)."""

    __slots__ = ("_ended", "_next", "_open", "_started", "_text", "_tools")

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._next = 0  # the next block index
        self._open: int | None = None  # the open block
        self._text: int | None = None  # the open block, when it is text
        self._tools: dict[int, int] = {}  # OpenAI tool-call index -> block index

    def feed(self, event: bytes | bytearray | dict) -> list:
        if isinstance(event, dict):
            data = event
        else:
            _, raw = read_event(event)
            if raw is None:
                return []
            if raw.strip() == b"[DONE]":
                return self.close()
            try:
                data = load_json(raw)
            except Malformed as exc:
                return [Error("api_error", f"the upstream sent a malformed event ({exc})")]
        out: list = []
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            return [Error(error.get("type") or "api_error", str(message or "upstream error"))]
        choices = data.get("choices")
        usage = data.get("usage")
        # Azure's first chunk may carry only prompt_filter_results, with an empty id and model.
        if not self._started and (choices or usage):
            self._started = True
            out.append(Start(data.get("id") or "", data.get("model") or ""))
        for choice in choices or ():
            if choice.get("index", 0) == 0:
                self._choice(choice, out)
        if usage:
            out.append(usage_to_ir(usage))
        return out

    def _choice(self, choice: dict, out: list) -> None:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            if self._text is None:
                self._stop(out)
                self._text = self._open = self._next
                self._next += 1
            out.append(TextDelta(self._text, text))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            key = call.get("index", position)
            function = call.get("function") or {}
            index = self._tools.get(key)
            if index is None:
                self._stop(out)
                index = self._tools[key] = self._open = self._next
                self._next += 1
                out.append(
                    ToolCallStart(
                        index, call.get("id") or f"call_{index}", function.get("name") or ""
                    )
                )
            arguments = function.get("arguments")
            if arguments:
                out.append(ToolCallDelta(index, arguments))
        reason = choice.get("finish_reason")
        if reason:
            self._stop(out)
            out.append(Finish(_FINISH_IN.get(reason, reason)))

    def _stop(self, out: list) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = self._text = None

    def close(self) -> list:
        """The events that end the stream ([DONE], or an upstream that just stopped)."""
        if self._ended:
            return []
        self._ended = True
        out: list = []
        self._stop(out)
        out.append(End())
        return out


class StreamEncoder:
    """Encodes IR events as OpenAI chunks, one `data:` event each (b"" for events OpenAI has no
    word for: thinking, block stops). Usage is held until End, then sent as the usage-only
    chunk when the client asked for it, before `data: [DONE]`."""

    __slots__ = (
        "_created",
        "_id",
        "_include_usage",
        "_model",
        "_model_override",
        "_tools",
        "_usage",
    )

    def __init__(self, *, model: str | None = None, include_usage: bool = True) -> None:
        self._model_override = model
        self._model = model or ""
        self._id = ""
        self._created = int(time.time())
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}  # block index -> OpenAI tool-call index
        self._usage: Usage | None = None

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            body["usage"] = None
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def encode(self, event) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            # An empty one only opens a block (Anthropic's content_block_start): no chunk.
            return self._chunk({"content": event.text}) if event.text else b""
        if kind is ToolCallDelta:
            position = self._tools.get(event.index)
            if position is None:
                return b""
            call = {"index": position, "function": {"arguments": event.arguments}}
            return self._chunk({"tool_calls": [call]})
        if kind is ToolCallStart:
            position = self._tools[event.index] = len(self._tools)
            call = {
                "index": position,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind is Start:
            self._id = event.id
            self._model = self._model_override or event.model
            if event.usage is not None:
                self._usage = event.usage
            return self._chunk({"role": "assistant", "content": ""})
        if kind is Finish:
            return self._chunk({}, _FINISH_OUT.get(event.reason, event.reason))
        if kind is Usage:
            self._usage = event
            return b""
        if kind is End:
            if self._include_usage and self._usage is not None:
                body = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._model,
                    "choices": [],
                    "usage": usage_from_ir(self._usage),
                }
                return b"data: " + orjson.dumps(body) + b"\n\n" + _DONE
            return _DONE
        if kind is Error:
            return openai_stream_error(0, event.type, event.message)
        if kind is ThinkingDelta or kind is BlockStop:
            return b""
        raise TypeError(f"not a stream event: {event!r}")


# --- constructors ---------------------------------------------------------------------------------


def stream_to_ir() -> StreamDecoder:
    return StreamDecoder()


def stream_from_ir(*, model: str | None = None, include_usage: bool = True) -> StreamEncoder:
    """`model` replaces the one the upstream reported; `include_usage` is whether the client
    asked for the final usage chunk (stream_options.include_usage)."""
    return StreamEncoder(model=model, include_usage=include_usage)
