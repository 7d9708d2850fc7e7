"""The Anthropic dialect: /v1/messages and /v1/messages/count_tokens, so that the official
`anthropic` SDK (and tools built on it) work unmodified.

Its errors are Anthropic's shape, `{"type": "error", "error": {"type", "message"},
"request_id"}`, with the status the gateway decides and the type Anthropic uses for that status
(routing/formats/errors.py). The key is in `x-api-key` or `Authorization: Bearer`.
"""

from typing import Annotated, Literal

from django.http import HttpResponse
from msgspec import Meta, Struct

from routing.formats import (
    Unsupported,
    anthropic_error_type,
    checked_usage,
    codec,
    read_stream_event,
    translate_request,
)
from routing.formats.ir import End, Error, Usage

from .. import validation
from ..errors import GatewayError
from .base import STREAM_ERROR_STATUS, Dialect

FORMAT = codec("anthropic")
ROLES = ("user", "assistant")


class Source(Struct):
    """An image's or a document's source (base64, url, text, file, ...)."""

    type: str
    url: str | None = None
    media_type: str | None = None
    data: str | None = None


class Block(Struct):
    """A content block (text, image, tool_use, tool_result, thinking, document, ...).

    The fields a translation for another provider reads are typed, so a block that holds the
    wrong type there (a text that is a list, a tool_use_id that is a number) is a 400 naming
    it, not a crash deep in a codec; the rest of a block is the caller's, as sent."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict | None = None
    tool_use_id: str | None = None
    # A tool result's (or a search result's) content; a server tool's result may be an object.
    content: "str | list[Block] | dict | None" = None
    is_error: bool | None = None
    # An image's or a document's source; a search result's is its URL.
    source: Source | str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


Content = str | Annotated[list[Block], Meta(min_length=1)]


class Message(Struct):
    role: Literal["user", "assistant"]
    content: Content


class _Request(Struct, kw_only=True):
    model: validation.ModelName
    messages: Annotated[list[Message], Meta(min_length=1)]
    system: str | list[Block] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict] | None = None
    tool_choice: dict | None = None
    metadata: dict | None = None
    thinking: dict | None = None


class MessagesRequest(_Request, kw_only=True):
    max_tokens: validation.PositiveInt
    stream: bool | None = None


class CountTokensRequest(_Request, kw_only=True):
    pass


def validate_messages(data: dict) -> MessagesRequest:
    return validation.convert(data, MessagesRequest, roles=ROLES)


def validate_count_tokens(data: dict) -> CountTokensRequest:
    return validation.convert(data, CountTokensRequest, roles=ROLES)


class UsageSniffer:
    """Reads an Anthropic stream relayed byte for byte: only the message_* and error events
    (a few per stream) are parsed, never the content deltas."""

    __slots__ = ("_decoder", "error", "finished", "usage")

    def __init__(self) -> None:
        self._decoder = FORMAT.stream_to_ir()
        self.usage: Usage | None = None
        self.error: str | None = None
        self.finished = False

    def feed(self, event: bytes | bytearray) -> None:
        head = event[:32]
        if b"message_" not in head and b"error" not in head:
            return
        for found in read_stream_event(self._decoder, event):
            kind = type(found)
            if kind is Usage:
                self.usage = checked_usage(found)
            elif kind is End:
                self.finished = True
            elif kind is Error and self.error is None:
                self.error = found.type


class AnthropicDialect(Dialect):
    name = "anthropic"
    key_header = "x-api-key"

    def __init__(self) -> None:
        self.validators = {
            "messages": validate_messages,
            "messages.count_tokens": validate_count_tokens,
        }

    def error_response(self, exc: GatewayError, request_id: str) -> HttpResponse:
        # The status decides the type: Anthropic's SDK and its users know its own vocabulary
        # (not_found_error, overloaded_error), not the gateway's codes.
        body = FORMAT.error_body(
            exc.status, anthropic_error_type(exc.status), exc.message, request_id=request_id
        )
        response = HttpResponse(body, status=exc.status, content_type="application/json")
        for name, value in exc.headers.items():
            response[name] = value
        response["x-request-id"] = request_id
        return response

    def stream_error(self, message: str, code: str) -> bytes:
        status = STREAM_ERROR_STATUS.get(code, 502)
        return FORMAT.stream_error(status, anthropic_error_type(status), message)

    def chat_view(self, data: dict) -> dict:
        try:
            body, _ = translate_request(data, source="anthropic", target="openai", model="")
        except Unsupported:
            # Not expressible in OpenAI's shape: the needs then come from the basics only; a
            # route that needs the translation refuses it later, naming the parameter.
            return {"messages": [], "stream": data.get("stream") is True}
        return body

    def usage_sniffer(self) -> UsageSniffer:
        return UsageSniffer()


ANTHROPIC = AnthropicDialect()
