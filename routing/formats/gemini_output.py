"""Gemini's answers <-> the IR: GenerateContentResponse, streamGenerateContent?alt=sse, usage.

The response (ai.google.dev/api/generate-content): `candidates[{content: {role: "model",
parts}, finishReason, index}]`, `promptFeedback.blockReason` when the prompt itself was blocked
(then there are no candidates), `usageMetadata`, `modelVersion`, `responseId`. The stream is
SSE with `alt=sse`: every `data:` event is a whole GenerateContentResponse holding the new
parts only. Text arrives in pieces; a functionCall part arrives whole, never as argument
fragments; the last chunk carries finishReason and the final usageMetadata. There is no end
marker: the stream ends when the connection does, so the decoder ends the IR stream at the
chunk with the finish reason (close() covers an upstream that stopped without one).

Gemini gives tool calls no id (newer models may send `id`): ids are synthesized as
`call_<n>`, n counting the calls of the answer, so they are stable for a given answer. The
request codec maps a tool result back to its call by the function's name.
"""

import orjson

from .anthropic_output import tool_input
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

# Every way Gemini says "blocked" reads as one clear IR word, content_filter: the safety
# classifiers, the term blocklist, prohibited content, personal data (SPII), image safety and
# recitation (the answer would have quoted protected material). MALFORMED_FUNCTION_CALL (the
# model wrote a call it could not parse) and OTHER have no IR word: they read as stop.
_FILTERED = frozenset(
    (
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
    )
)
_FINISH_OUT = {
    "stop": "STOP",
    "stop_sequence": "STOP",
    "tool_calls": "STOP",  # Gemini ends a function-calling turn with STOP
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def finish_to_ir(reason: str | None, *, called: bool = False) -> str | None:
    """The IR finish reason; `called` is whether the answer holds a functionCall (Gemini says
    STOP for those, OpenAI and Anthropic clients expect tool_calls)."""
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def finish_from_ir(reason: str | None) -> str:
    return _FINISH_OUT.get(reason, "STOP") if reason is not None else "STOP"


def usage_to_ir(usage: dict | None) -> Usage:
    """promptTokenCount already counts the cached tokens (like OpenAI's prompt_tokens).
    Thinking tokens (thoughtsTokenCount) are billed as output but not counted in
    candidatesTokenCount, so output is their sum; tool-use prompt tokens are input."""
    if not usage:
        return Usage()
    return Usage(
        input_tokens=(usage.get("promptTokenCount") or 0)
        + (usage.get("toolUsePromptTokenCount") or 0),
        output_tokens=(usage.get("candidatesTokenCount") or 0)
        + (usage.get("thoughtsTokenCount") or 0),
        cache_read_tokens=usage.get("cachedContentTokenCount") or 0,
    )


def usage_from_ir(usage: Usage) -> dict:
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    return out


# Thinking models put a thoughtSignature on a functionCall part, and Gemini 3 refuses (400) a
# history whose calls lack theirs. A client of another format keeps only the call's id, so the
# signature travels in the id (base64 made URL-safe, so it stays a valid OpenAI and Anthropic
# id) and comes back out of it when the history is sent to Gemini.
_SIGNED = "_sig_"
# For a call that has no thoughtSignature of its own (made by another model, or by a client
# that lost it): the value Gemini's thought-signature docs give for exactly that case, which
# models that check signatures (Gemini 3) accept and the others ignore.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_TO_SAFE = str.maketrans("+/", "-_")
_FROM_SAFE = str.maketrans("-_", "+/")


def call_id(part: dict, n: int) -> str:
    """The IR id of a functionCall part: Gemini's own `id` when it sent one, else `call_<n>`,
    n counting the calls of the answer, plus the part's thoughtSignature if any."""
    id_ = part["functionCall"].get("id") or f"call_{n}"
    signature = part.get("thoughtSignature")
    if not signature or signature == SKIP_SIGNATURE:
        return id_
    return id_ + _SIGNED + signature.rstrip("=").translate(_TO_SAFE)


def call_signature(id_: str) -> str | None:
    """The thoughtSignature carried in an IR call id (call_id's inverse), or None."""
    _, found, safe = id_.partition(_SIGNED)
    if not found or not safe:
        return None
    return safe.translate(_FROM_SAFE) + "=" * (-len(safe) % 4)


def function_call_part(call: ToolCall, *, fallback: str | None = None) -> dict:
    """A functionCall part; its thoughtSignature from the id, else `fallback` when given."""
    args = tool_input(call.arguments) or {}
    part: dict = {"functionCall": {"name": call.name, "args": args}}
    signature = call_signature(call.id) or fallback
    if signature:
        part["thoughtSignature"] = signature
    return part


# --- responses ------------------------------------------------------------------------------------


def response_to_ir(body: dict) -> ChatResponse:
    try:
        candidates = body.get("candidates") or ()
        parts: list = []
        reason = None
        if candidates:
            candidate = candidates[0]
            calls = 0
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    call = part["functionCall"]
                    arguments = orjson.dumps(call.get("args") or {}).decode()
                    parts.append(ToolCall(call_id(part, calls), call["name"], arguments))
                    calls += 1
                elif "text" in part:
                    if part.get("thought"):
                        parts.append(Thinking(part["text"], part.get("thoughtSignature")))
                    elif part["text"]:
                        parts.append(Text(part["text"]))
                # inlineData / executableCode answers have no IR equivalent: skipped.
            reason = finish_to_ir(candidate.get("finishReason"), called=calls > 0)
        elif (body.get("promptFeedback") or {}).get("blockReason"):
            reason = "content_filter"  # the prompt was blocked: no candidate at all
        else:
            raise Malformed("not a GenerateContentResponse: no candidates and no blockReason")
        return ChatResponse(
            id=body.get("responseId") or "",
            model=body.get("modelVersion") or "",
            parts=parts,
            finish_reason=reason,
            usage=usage_to_ir(body.get("usageMetadata")),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Malformed(f"not a GenerateContentResponse: {exc!r}") from None


def _part_out(part) -> dict | None:
    kind = type(part)
    if kind is Text:
        return {"text": part.text} if part.text else None
    if kind is ToolCall:
        return function_call_part(part)
    if kind is Thinking and part.redacted is None:
        out: dict = {"text": part.text, "thought": True}
        if part.signature:
            out["thoughtSignature"] = part.signature
        return out
    return None


def response_from_ir(resp: ChatResponse, *, model: str) -> dict:
    parts = [out for out in map(_part_out, resp.parts) if out is not None]
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish_from_ir(resp.finish_reason),
                "index": 0,
            }
        ],
        "usageMetadata": usage_from_ir(resp.usage),
        "modelVersion": model,
        "responseId": resp.id,
    }


# --- streams --------------------------------------------------------------------------------------


class StreamDecoder:
    """Feeds on one SSE event (bytes) or its parsed JSON at a time; returns the IR events it
    makes. Blocks are numbered in order of appearance: consecutive text parts are one block,
    consecutive thought parts another, each functionCall a block of its own, opened, given its
    whole arguments as one delta, and closed at once. Only candidate 0 is read."""

    __slots__ = ("_calls", "_ended", "_kind", "_next", "_open", "_started")

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._next = 0
        self._open: int | None = None
        self._kind: str | None = None  # "text" | "thought", the open block's kind
        self._calls = 0

    def feed(self, event: bytes | bytearray | dict) -> list:
        if self._ended:
            return []
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
        error = data.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "upstream error")
            return [Error(error.get("status") or "api_error", message)]
        out: list = []
        if not self._started:
            self._started = True
            out.append(Start(data.get("responseId") or "", data.get("modelVersion") or ""))
        candidates = data.get("candidates") or ()
        reason = None
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or ():
                self._part(part, out)
            raw_reason = candidate.get("finishReason")
            reason = finish_to_ir(raw_reason, called=self._calls > 0)
        elif (data.get("promptFeedback") or {}).get("blockReason"):
            reason = "content_filter"
        usage = data.get("usageMetadata")
        if reason is not None:
            self._stop(out)
            out.append(Finish(reason))
        if usage:
            out.append(usage_to_ir(usage))
        if reason is not None:
            # No end marker in a Gemini stream: the finish reason comes on the last chunk, with
            # the final usage, so the IR stream ends here.
            self._ended = True
            out.append(End())
        return out

    def _part(self, part: dict, out: list) -> None:
        if "functionCall" in part:
            call = part["functionCall"] or {}
            self._stop(out)
            index = self._next
            self._next += 1
            name = call.get("name") or ""
            out.append(ToolCallStart(index, call_id(part, self._calls), name))
            self._calls += 1
            out.append(ToolCallDelta(index, orjson.dumps(call.get("args") or {}).decode()))
            out.append(BlockStop(index))
            return
        text = part.get("text")
        if text is None:
            return  # inlineData, executableCode...: no IR equivalent
        kind = "thought" if part.get("thought") else "text"
        if not text and (kind == "text" or not part.get("thoughtSignature")):
            return  # the last chunk often holds an empty text part: it opens nothing
        if self._kind != kind:
            self._stop(out)
            self._open = self._next
            self._kind = kind
            self._next += 1
        if kind == "text":
            out.append(TextDelta(self._open, text))
        else:
            out.append(ThinkingDelta(self._open, text, part.get("thoughtSignature")))

    def _stop(self, out: list) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = self._kind = None

    def close(self) -> list:
        """Ends the IR stream when the upstream stopped without a finish reason."""
        if self._ended:
            return []
        self._ended = True
        out: list = []
        self._stop(out)
        out.append(End())
        return out


def _data(body: dict) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\r\n\r\n"


class StreamEncoder:
    """Encodes IR events as Gemini SSE chunks. Text and thoughts go out as they come; a tool
    call is held until its block closes (Gemini sends functionCall parts whole); the finish
    reason and usage go out on the last chunk, at End."""

    __slots__ = ("_calls", "_finish", "_id", "_model", "_usage")

    def __init__(self, *, model: str | None = None) -> None:
        self._model = model or ""
        self._id = ""
        self._calls: dict[int, list] = {}  # block index -> [name, arguments]
        self._finish: str | None = None
        self._usage: Usage | None = None

    def _chunk(self, parts: list[dict], **extra) -> bytes:
        candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
        candidate.update(extra.pop("candidate", {}))
        body = {"candidates": [candidate], **extra}
        body["modelVersion"] = self._model
        body["responseId"] = self._id
        return _data(body)

    def encode(self, event) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            return self._chunk([{"text": event.text}]) if event.text else b""
        if kind is ToolCallStart:
            self._calls[event.index] = [event.id, event.name, ""]
            return b""
        if kind is ToolCallDelta:
            call = self._calls.get(event.index)
            if call is not None:
                call[2] += event.arguments
            return b""
        if kind is BlockStop:
            call = self._calls.pop(event.index, None)
            if call is None:
                return b""
            return self._chunk([function_call_part(ToolCall(*call))])
        if kind is ThinkingDelta:
            if not event.text and not event.signature:
                return b""
            part: dict = {"text": event.text, "thought": True}
            if event.signature:
                part["thoughtSignature"] = event.signature
            return self._chunk([part])
        if kind is Start:
            self._id = event.id
            self._model = self._model or event.model
            if event.usage is not None:
                self._usage = event.usage
            return b""
        if kind is Finish:
            self._finish = event.reason
            return b""
        if kind is Usage:
            self._usage = event
            return b""
        if kind is End:
            out = b"".join(self.encode(BlockStop(index)) for index in list(self._calls))
            extra: dict = {"candidate": {"finishReason": finish_from_ir(self._finish)}}
            if self._usage is not None:
                extra["usageMetadata"] = usage_from_ir(self._usage)
            return out + self._chunk([], **extra)
        if kind is Error:
            return _data({"error": {"code": 500, "message": event.message, "status": "INTERNAL"}})
        raise TypeError(f"not a stream event: {event!r}")


def stream_to_ir() -> StreamDecoder:
    return StreamDecoder()


def stream_from_ir(*, model: str | None = None, include_usage: bool = True) -> StreamEncoder:
    """`model` replaces the one the upstream reported. Gemini streams always carry
    usageMetadata, so `include_usage` (accepted for a uniform signature) changes nothing."""
    return StreamEncoder(model=model)
