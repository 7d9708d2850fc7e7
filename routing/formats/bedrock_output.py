"""Bedrock's Converse answers <-> the IR: responses, ConverseStream events, error mapping.

The stream (Bedrock Runtime ConverseStream): the adapter decodes the AWS event-stream framing
(botocore's own parser) into events, each an event type and its JSON payload:
messageStart {role}; contentBlockStart {contentBlockIndex, start: {toolUse: {toolUseId, name}}}
(text and reasoning blocks have none: their first delta opens them); contentBlockDelta
{contentBlockIndex, delta: {text} | {toolUse: {input: "<JSON fragment>"}} | {reasoningContent:
{text} | {signature} | {redactedContent}}}; contentBlockStop {contentBlockIndex}; messageStop
{stopReason, additionalModelResponseFields?}; metadata {usage, metrics} last. A failure
mid-stream is an exception event (throttlingException, modelStreamErrorException, ...) with a
{message} payload.

So, unlike the SSE formats, StreamDecoder.feed takes an `(event_type, payload)` tuple, or the
one-key dict `{event_type: payload}` that boto3 yields for the same event, or the same event
re-framed as SSE (`event: <type>\ndata: <JSON payload>\n\n`), which is what the bedrock adapter
hands the proxy's relay. StreamEncoder.encode
returns a list of such tuples rather than bytes: Bedrock is never a client dialect, and the
encoder exists for symmetry and tests.
"""

import os

import orjson

from .errors import Malformed
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

_FINISH_IN = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_FINISH_OUT = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}


def finish_to_ir(reason: str | None) -> str | None:
    if reason is None:
        return None
    return _FINISH_IN.get(reason, "stop")


def finish_from_ir(reason: str | None) -> str:
    return _FINISH_OUT.get(reason, "end_turn") if reason is not None else "end_turn"


def usage_to_ir(usage: dict | None) -> Usage:
    """Bedrock counts cached prompt tokens apart from inputTokens (totalTokens adds them all);
    the IR, like OpenAI's prompt_tokens, counts every prompt token in input_tokens."""
    if not usage:
        return Usage()
    read = usage.get("cacheReadInputTokens") or 0
    write = usage.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=(usage.get("inputTokens") or 0) + read + write,
        output_tokens=usage.get("outputTokens") or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_ir(usage: Usage) -> dict:
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    out = {
        "inputTokens": max(0, usage.input_tokens - read - write),
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }
    if read:
        out["cacheReadInputTokens"] = read
    if write:
        out["cacheWriteInputTokens"] = write
    return out


def _new_id() -> str:
    # Converse answers carry no id (only the x-amzn-requestid header); clients expect one.
    return "bedrock-" + os.urandom(12).hex()


def _stop_sequence(fields: dict | None) -> str | None:
    # Anthropic models on Bedrock report the matched stop sequence here.
    value = (fields or {}).get("stop_sequence")
    return value if isinstance(value, str) else None


# --- responses ------------------------------------------------------------------------------------


def response_to_ir(body: dict) -> ChatResponse:
    try:
        parts: list = []
        for block in body["output"]["message"]["content"]:
            if "text" in block:
                parts.append(Text(block["text"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                arguments = orjson.dumps(use.get("input") or {}).decode()
                parts.append(ToolCall(use["toolUseId"], use["name"], arguments))
            elif "reasoningContent" in block:
                reasoning = block["reasoningContent"]
                if "redactedContent" in reasoning:
                    parts.append(Thinking(redacted=reasoning["redactedContent"]))
                else:
                    text = reasoning.get("reasoningText") or {}
                    parts.append(Thinking(text.get("text") or "", text.get("signature")))
            # Images, documents, citations and guard content have no place in an answer here.
        return ChatResponse(
            id=_new_id(),
            model="",
            parts=parts,
            finish_reason=finish_to_ir(body.get("stopReason")),
            usage=usage_to_ir(body.get("usage")),
            stop_sequence=_stop_sequence(body.get("additionalModelResponseFields")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise Malformed(f"not a Converse answer: {exc!r}") from None


def response_from_ir(resp: ChatResponse, *, model: str) -> dict:
    """A Converse answer (symmetry and tests; Bedrock is never a client dialect)."""
    content: list[dict] = []
    for part in resp.parts:
        kind = type(part)
        if kind is Text:
            if part.text:
                content.append({"text": part.text})
        elif kind is ToolCall:
            try:
                input_ = orjson.loads(part.arguments or "{}")
            except orjson.JSONDecodeError:
                input_ = {}
            use = {"toolUseId": part.id, "name": part.name, "input": input_}
            content.append({"toolUse": use if isinstance(input_, dict) else {**use, "input": {}}})
        elif kind is Thinking:
            if part.redacted is not None:
                content.append({"reasoningContent": {"redactedContent": part.redacted}})
            else:
                text = {"text": part.text, "signature": part.signature or ""}
                content.append({"reasoningContent": {"reasoningText": text}})
    body: dict = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": finish_from_ir(resp.finish_reason),
        "usage": usage_from_ir(resp.usage),
        "metrics": {"latencyMs": 0},
    }
    if resp.stop_sequence is not None:
        body["additionalModelResponseFields"] = {"stop_sequence": resp.stop_sequence}
    return body


# --- streams --------------------------------------------------------------------------------------

# ConverseStream's exception events, as the IR's (Anthropic's) error types: what a client's
# dialect then reports (overloaded where a non-streamed call would have had a 503).
STREAM_ERROR_TYPES = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "validationException": "invalid_request_error",
    "modelStreamErrorException": "api_error",
    "internalServerException": "api_error",
    "modelTimeoutException": "api_error",
}


class StreamDecoder:
    """Feeds on one decoded ConverseStream event at a time: an `(event_type, payload)` tuple or
    boto3's `{event_type: payload}` dict. Returns the IR events it makes; block indexes are
    Bedrock's contentBlockIndex. metadata (the last event) ends the stream."""

    __slots__ = ("_ended", "_started")

    def __init__(self) -> None:
        self._ended = False
        self._started = False

    def feed(self, event) -> list:
        if isinstance(event, bytes | bytearray):
            # The adapter re-frames each decoded event as one SSE event (`event: <type>`,
            # `data: <payload>`), so the proxy's relay splits Bedrock streams like any other.
            kind, data = read_event(event)
            if kind is None or data is None:
                return []  # nothing but a comment
            payload = load_json(data)
        elif isinstance(event, dict):
            if len(event) != 1:
                return [Error("api_error", "the upstream sent a malformed stream event")]
            ((kind, payload),) = event.items()
        else:
            kind, payload = event
        if not isinstance(payload, dict):
            return [Error("api_error", f"the upstream sent a malformed {kind} event")]
        if kind == "contentBlockDelta":
            return self._delta(payload.get("contentBlockIndex", 0), payload.get("delta") or {})
        out: list = [] if self._started or kind not in _OPENING else [self._start()]
        if kind == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if use is not None:
                index = payload.get("contentBlockIndex", 0)
                out.append(ToolCallStart(index, use.get("toolUseId") or "", use.get("name") or ""))
        elif kind == "contentBlockStop":
            out.append(BlockStop(payload.get("contentBlockIndex", 0)))
        elif kind == "messageStop":
            reason = finish_to_ir(payload.get("stopReason")) or "stop"
            fields = payload.get("additionalModelResponseFields")
            out.append(Finish(reason, _stop_sequence(fields)))
        elif kind == "metadata":
            out.append(usage_to_ir(payload.get("usage")))
            out.extend(self.close())
        elif kind in STREAM_ERROR_TYPES or kind.endswith("Exception"):
            message = str(payload.get("message") or "upstream error")
            out.append(Error(STREAM_ERROR_TYPES.get(kind, "api_error"), message))
        # messageStart only opens the message; event types added later are ignored.
        return out

    def _start(self) -> Start:
        self._started = True
        return Start(_new_id(), "")

    def _delta(self, index: int, delta: dict) -> list:
        out: list = [] if self._started else [self._start()]
        if "text" in delta:
            out.append(TextDelta(index, delta["text"]))
        elif "toolUse" in delta:
            fragment = (delta["toolUse"] or {}).get("input")
            if fragment:
                out.append(ToolCallDelta(index, fragment))
        elif "reasoningContent" in delta:
            reasoning = delta["reasoningContent"] or {}
            if "text" in reasoning:
                out.append(ThinkingDelta(index, reasoning["text"] or ""))
            if reasoning.get("signature"):
                out.append(ThinkingDelta(index, signature=reasoning["signature"]))
            if "redactedContent" in reasoning:
                out.append(ThinkingDelta(index, redacted=reasoning["redactedContent"] or ""))
        return out

    def close(self) -> list:
        """The events that end the stream (metadata, or an upstream that just stopped)."""
        if self._ended:
            return []
        self._ended = True
        return [End()]


_OPENING = frozenset(("messageStart", "contentBlockStart", "contentBlockStop", "messageStop"))


class StreamEncoder:
    """Encodes IR events as ConverseStream events: a list of (event_type, payload) per IR event.
    Finish and usage are held until End (messageStop, then metadata), as the IR may report
    them in either order."""

    __slots__ = ("_blocks", "_finish", "_started", "_stop_sequence", "_usage")

    def __init__(self) -> None:
        self._started = False
        self._blocks: dict[int, int] = {}  # IR block index -> contentBlockIndex
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._usage = Usage()

    def _head(self) -> list:
        if self._started:
            return []
        self._started = True
        return [("messageStart", {"role": "assistant"})]

    def _index(self, index: int) -> int:
        found = self._blocks.get(index)
        if found is None:
            found = self._blocks[index] = len(self._blocks)
        return found

    def _delta(self, index: int, delta: dict) -> list:
        payload = {"contentBlockIndex": self._index(index), "delta": delta}
        return [*self._head(), ("contentBlockDelta", payload)]

    def encode(self, event) -> list:
        kind = type(event)
        if kind is TextDelta:
            return self._delta(event.index, {"text": event.text})
        if kind is ToolCallDelta:
            if event.index not in self._blocks:
                return []
            return self._delta(event.index, {"toolUse": {"input": event.arguments}})
        if kind is ToolCallStart:
            start = {"toolUse": {"toolUseId": event.id, "name": event.name}}
            payload = {"contentBlockIndex": self._index(event.index), "start": start}
            return [*self._head(), ("contentBlockStart", payload)]
        if kind is ThinkingDelta:
            if event.redacted is not None:
                reasoning: dict = {"redactedContent": event.redacted}
            elif event.signature:
                reasoning = {"signature": event.signature}
            else:
                reasoning = {"text": event.text}
            return self._delta(event.index, {"reasoningContent": reasoning})
        if kind is BlockStop:
            found = self._blocks.get(event.index)
            return [] if found is None else [("contentBlockStop", {"contentBlockIndex": found})]
        if kind is Start:
            return self._head()
        if kind is Finish:
            self._finish, self._stop_sequence = event.reason, event.stop_sequence
            return []
        if kind is Usage:
            self._usage = event
            return []
        if kind is End:
            stop: dict = {"stopReason": finish_from_ir(self._finish)}
            if self._stop_sequence is not None:
                stop["additionalModelResponseFields"] = {"stop_sequence": self._stop_sequence}
            metadata = {"usage": usage_from_ir(self._usage), "metrics": {"latencyMs": 0}}
            return [*self._head(), ("messageStop", stop), ("metadata", metadata)]
        if kind is Error:
            name = {v: k for k, v in STREAM_ERROR_TYPES.items()}.get(event.type)
            return [(name or "internalServerException", {"message": event.message})]
        raise TypeError(f"not a stream event: {event!r}")


def stream_to_ir() -> StreamDecoder:
    return StreamDecoder()


def stream_from_ir(*, model: str | None = None, include_usage: bool = True) -> StreamEncoder:
    """The metadata event is part of every ConverseStream, so `include_usage` and `model`
    (accepted for a uniform signature) change nothing."""
    return StreamEncoder()


# --- errors ---------------------------------------------------------------------------------------


def error_body(
    status: int,
    type_: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """Bedrock's error body is `{"message": ...}`; its type travels in the x-amzn-errortype
    header, which a body cannot carry."""
    return orjson.dumps({"message": message})


def stream_error(
    status: int, type_: str, message: str, *, code: str | None = None, request_id: str | None = None
) -> bytes:
    return orjson.dumps({"message": message})
