"""The one model between the client's dialect and the provider's wire format.

A request, a response or a stream crosses formats as these values: the client's codec decodes
into them, the provider's codec encodes out of them, so N formats need N codecs, not N² pairs.
Same-format traffic does not come here at all (it is passed through untouched, so nothing is
lost); that is why the model holds what the formats share and no more.

msgspec Structs rather than dataclasses: they are built in C (~3x faster to construct, which
a stream pays per event), compare by value in tests, and pattern-match. Parts and events are
frozen; a ChatRequest is not, so the pipeline can apply policy (a max_tokens cap) to it.

Conventions:
- Roles are "user" and "assistant" only. A tool result is a part (ToolResult) of a user message,
  as in Anthropic's Messages API; an OpenAI `tool` message decodes to a user message holding one
  ToolResult, and the OpenAI codec splits them out again. System prompts are `ChatRequest.system`.
- Token counts follow OpenAI's arithmetic: `input_tokens` is every prompt token, cached or not;
  `cache_read_tokens` and `cache_write_tokens` are the parts of it read from and written to the
  provider's prompt cache.
- A stream is a flat sequence of events. Content events carry a block `index` (Anthropic's
  content-block index; the OpenAI decoder numbers its text and tool calls the same way): the
  first event of an index opens its block, BlockStop closes it.
"""

from typing import Any

from msgspec import Struct

# --- content parts --------------------------------------------------------------------------------


class Text(Struct, frozen=True, gc=False):
    text: str


class Image(Struct, frozen=True, gc=False):
    """Either `url` (http(s)) or `media_type` + base64 `data` (a data: URL is decoded to these)."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None


class ToolCall(Struct, frozen=True, gc=False):
    id: str
    name: str
    arguments: str = "{}"  # a JSON text, as the model wrote it


class ToolResult(Struct, frozen=True, gc=False):
    tool_call_id: str
    content: list[Text | Image]
    is_error: bool = False


class Thinking(Struct, frozen=True, gc=False):
    """Anthropic's extended thinking; `redacted` holds a redacted_thinking block's data."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Text | Image | ToolCall | ToolResult | Thinking


class Message(Struct, frozen=True, gc=False):
    role: str  # "user" | "assistant"
    parts: list[Part]
    # Where the message sits in the client's own `messages`, so a refusal names it right even
    # after system messages were lifted out.
    index: int = 0


# --- the request ----------------------------------------------------------------------------------


class Tool(Struct, frozen=True, gc=False):
    name: str
    description: str | None = None
    parameters: dict = {}  # a JSON Schema
    strict: bool | None = None


class NamedTool(Struct, frozen=True, gc=False):
    """tool_choice naming the one tool the model must call."""

    name: str


class ResponseFormat(Struct, frozen=True, gc=False):
    type: str  # "json_object" | "json_schema"
    schema: dict | None = None
    name: str | None = None
    strict: bool | None = None


class Defaults(Struct, frozen=True):
    """Per-deployment values an encoder needs when the client gave none."""

    # Anthropic requires max_tokens on every request.
    max_tokens: int = 4096
    # OpenAI's reasoning models accept only max_completion_tokens; many OpenAI-compatible
    # servers only max_tokens. The adapter for the kind picks.
    max_tokens_field: str = "max_completion_tokens"


class ChatRequest(Struct, kw_only=True):
    source: str  # the format it was decoded from
    messages: list[Message]
    system: list[Text] = []
    tools: list[Tool] = []
    tool_choice: str | NamedTool | None = None  # "auto" | "none" | "required" | NamedTool
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = []
    seed: int | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    # Top-level fields the model has no place for, as the client sent them: merged back only
    # into a body of the same format, listed as dropped by any other.
    extra: dict[str, Any] = {}
    # Names of nested fields the decoder could not carry (a message's `name`, cache_control):
    # dropped whatever the target, so listed by every encoder.
    unmapped: list[str] = []


# --- the response ---------------------------------------------------------------------------------

# Finish reasons: "stop" | "length" | "tool_calls" | "content_filter" | "stop_sequence".


class Usage(Struct, frozen=True, gc=False):
    """Token counts; also the stream event that reports them (the last one seen wins)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class ChatResponse(Struct, kw_only=True):
    id: str
    model: str
    parts: list[Part]
    finish_reason: str | None
    usage: Usage
    stop_sequence: str | None = None


# --- stream events --------------------------------------------------------------------------------


class Start(Struct, frozen=True, gc=False):
    id: str
    model: str
    usage: Usage | None = None


class TextDelta(Struct, frozen=True, gc=False):
    index: int
    text: str


class ToolCallStart(Struct, frozen=True, gc=False):
    index: int
    id: str
    name: str


class ToolCallDelta(Struct, frozen=True, gc=False):
    index: int
    arguments: str  # a fragment of the JSON text


class ThinkingDelta(Struct, frozen=True, gc=False):
    index: int
    text: str = ""
    signature: str | None = None
    redacted: str | None = None


class BlockStop(Struct, frozen=True, gc=False):
    index: int


class Finish(Struct, frozen=True, gc=False):
    reason: str
    stop_sequence: str | None = None


class Error(Struct, frozen=True, gc=False):
    type: str
    message: str


class End(Struct, frozen=True, gc=False):
    pass


StreamEvent = (
    Start
    | TextDelta
    | ToolCallStart
    | ToolCallDelta
    | ThinkingDelta
    | BlockStop
    | Finish
    | Usage
    | Error
    | End
)


def finish_request(
    body: dict, req: ChatRequest, target: str, dropped: list[str], unsupported: tuple[str, ...] = ()
) -> tuple[dict, list[str]]:
    """The last step of every `request_from_ir`: list the set parameters `target` has no field
    for, then carry the client's unknown fields over only within one format (another format's
    unknown fields mean nothing there, so they are dropped and named)."""
    for name in unsupported:
        if getattr(req, name) is not None:
            dropped.append(name)
    if req.source == target:
        body.update(req.extra)
    else:
        dropped.extend(req.extra)
    return body, list(dict.fromkeys(dropped))
