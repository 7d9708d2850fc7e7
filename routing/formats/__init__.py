"""Wire formats, and translation between them through one internal model (ir.py).

One codec per format serves whichever side the format is on: the client's dialect (decode its
request, encode the answer) or the provider's adapter (encode the request, decode the answer).
Each codec module has the same functions (the Codec protocol below). Translation is only for
traffic that crosses formats; same-format traffic is passed through untouched.

    body, dropped = translate_request(client_body, source="openai", target="anthropic",
                                      model=route.upstream_model, defaults=Defaults(...))
    # Unsupported -> 400 naming exc.param; `dropped` -> the x-gateway-dropped-params header
    answer, usage = translate_response(upstream_body, source="anthropic", target="openai",
                                       model=public_model)
    stream = StreamTranslator("anthropic", "openai", include_usage=client_asked)
    for event in upstream_events: client_bytes = stream.feed(event)   # stream.usage at the end
"""

from typing import Protocol

import msgspec

from . import anthropic, bedrock, gemini, openai
from .errors import (
    ANTHROPIC_TYPE_BY_STATUS,
    STATUS_BY_ANTHROPIC_TYPE,
    Malformed,
    Unsupported,
    anthropic_error_type,
)
from .ir import ChatRequest, ChatResponse, Defaults, End, Error, Finish, Usage

__all__ = [
    "ANTHROPIC_TYPE_BY_STATUS",
    "FORMATS",
    "STATUS_BY_ANTHROPIC_TYPE",
    "Codec",
    "Defaults",
    "Malformed",
    "StreamTranslator",
    "Unsupported",
    "anthropic_error_type",
    "checked_usage",
    "codec",
    "read_stream_event",
    "translate_request",
    "translate_response",
]


class StreamDecoder(Protocol):
    def feed(self, event: bytes | bytearray | dict) -> list: ...
    def close(self) -> list: ...


class StreamEncoder(Protocol):
    def encode(self, event) -> bytes: ...


class Codec(Protocol):
    """What every codec module provides."""

    NAME: str

    def request_to_ir(self, body: dict) -> ChatRequest: ...
    def request_from_ir(
        self, req: ChatRequest, *, model: str, defaults: Defaults = ...
    ) -> tuple[dict, list[str]]: ...
    def response_to_ir(self, body: dict) -> ChatResponse: ...
    def response_from_ir(self, resp: ChatResponse, *, model: str) -> dict: ...
    def stream_to_ir(self) -> StreamDecoder: ...
    def stream_from_ir(
        self, *, model: str | None = None, include_usage: bool = True
    ) -> StreamEncoder: ...
    def error_body(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> bytes: ...
    def stream_error(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> bytes: ...


FORMATS: dict[str, Codec] = {
    "openai": openai,
    "anthropic": anthropic,
    "gemini": gemini,
    "bedrock": bedrock,
}


def codec(name: str) -> Codec:
    """The codec of a wire format ("openai", "anthropic"); KeyError for an unknown one."""
    return FORMATS[name]


def translate_request(
    body: dict, *, source: str, target: str, model: str, defaults: Defaults | None = None
) -> tuple[dict, list[str]]:
    """The request for a `target` provider, and the client parameters it had to drop. Raises
    Unsupported for a parameter that must be refused instead (400 naming `param`)."""
    req = FORMATS[source].request_to_ir(body)
    encode = FORMATS[target].request_from_ir
    try:
        return (
            encode(req, model=model)
            if defaults is None
            else encode(req, model=model, defaults=defaults)
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        # A value of the wrong type that decoding carried over (a text part whose text is
        # null, an id that is an object), met where the target's encoder reads it: still the
        # client's 400 (crossing.plan), not a 500.
        raise Unsupported(None, f"the request body is malformed ({exc!r})") from None


def translate_response(body: dict, *, source: str, target: str, model: str) -> tuple[dict, Usage]:
    """A provider's `source`-format answer in the client's `target` format, and its usage.
    Raises Malformed when the provider's body is not one."""
    resp = FORMATS[source].response_to_ir(body)
    return FORMATS[target].response_from_ir(resp, model=model), resp.usage


# What a decoder raises on an event whose fields have the wrong types (a list where an index
# is, a string where a choice object is): the stream codecs read fields as the format defines
# them and leave the upstream's errors to this one place.
_UNREADABLE = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def read_stream_event(decoder: StreamDecoder, event) -> list:
    """`decoder`'s IR events for one upstream event; Malformed (the relay's 502 and error
    event) for one it cannot read, never another exception that would cut the stream short."""
    try:
        return decoder.feed(event)
    except Malformed:
        raise
    except _UNREADABLE as exc:
        raise Malformed(
            f"an upstream stream event has fields of the wrong type ({exc!r})"
        ) from None


def checked_usage(usage: Usage) -> Usage:
    """`usage` if its counts are integers (what settles the request's cost), else Malformed."""
    try:
        return msgspec.convert(msgspec.structs.asdict(usage), Usage)
    except msgspec.ValidationError as exc:
        raise Malformed(f"the upstream reported usage that is not token counts ({exc})") from None


class StreamTranslator:
    """Relays one stream across formats, one upstream SSE event at a time. `usage` is the last
    complete usage the upstream reported (None if none came: estimate, and say so; Anthropic's
    message_start counts only the input, so it does not count here); `finished` turns true once
    the upstream's end (or close()) has been translated."""

    __slots__ = ("_decoder", "_encoder", "error", "finish_reason", "finished", "usage")

    def __init__(
        self, source: str, target: str, *, model: str | None = None, include_usage: bool = True
    ) -> None:
        self._decoder = FORMATS[source].stream_to_ir()
        self._encoder = FORMATS[target].stream_from_ir(model=model, include_usage=include_usage)
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.finished = False
        # The type of the first error event the upstream sent mid-stream, if any.
        self.error: str | None = None

    def _encode(self, events: list) -> bytes:
        encode = self._encoder.encode
        out = []
        for event in events:
            kind = type(event)
            if kind is Usage:
                self.usage = event = checked_usage(event)
            elif kind is Finish:
                self.finish_reason = event.reason
            elif kind is End:
                self.finished = True
            elif kind is Error and self.error is None:
                self.error = event.type
            out.append(encode(event))
        return b"".join(out)

    def feed(self, event: bytes | bytearray | dict) -> bytes:
        """The client's bytes for one complete upstream event (often b"": a ping, a usage)."""
        events = read_stream_event(self._decoder, event)
        try:
            return self._encode(events)
        except _UNREADABLE as exc:  # a value of the wrong type the decoder carried over
            raise Malformed(f"an upstream stream event cannot be translated ({exc!r})") from None

    def close(self) -> bytes:
        """Ends the client's stream properly when the upstream stopped without its end marker."""
        try:
            return self._encode(self._decoder.close())
        except _UNREADABLE as exc:
            raise Malformed(f"an upstream stream cannot be translated ({exc!r})") from None
