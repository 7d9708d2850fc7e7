"""The request bodies /v1 accepts, declared as msgspec Structs and checked before any upstream call.

The schemas name the fields the OpenAI API defines, with their types and ranges; anything else
(a provider's own parameters) is let through untouched, because the body forwarded upstream is
the client's dict, not these Structs. They exist to refuse a malformed request with a 400 that
names the field (`param`), instead of spending an upstream call, a rate-limit slot and the
caller's time on a request the upstream would refuse anyway.

msgspec checks a parsed dict against them in C (`convert`): ~1 µs for a typical chat request.
Every field is optional-or-null unless the API requires it, and the API's ranges are the only
limits; stricter rules of one vendor (OpenAI's 4 stop sequences, its 128 choices) are left to
that vendor, since the gateway fronts several.
"""

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from .errors import BadRequest

ModelName = Annotated[str, Meta(min_length=1, max_length=200)]
PositiveInt = Annotated[int, Meta(ge=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]


# --- chat: messages ------------------------------------------------------------------------------


class ContentPart(Struct):
    """One part of a multi-part content (text, image_url, input_audio, file, ...)."""

    type: str
    text: str | None = None


Content = str | Annotated[list[ContentPart], Meta(min_length=1)]


class ToolCallFunction(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    function: ToolCallFunction
    id: str | None = None
    type: str = "function"


class Message(Struct, tag_field="role", kw_only=True):
    """A message; its `role` picks which of the Structs below applies."""

    name: str | None = None


class SystemMessage(Message, tag="system"):
    content: Content


class DeveloperMessage(Message, tag="developer"):
    content: Content


class UserMessage(Message, tag="user"):
    content: Content


class AssistantMessage(Message, tag="assistant"):
    # Null or absent only beside what replaces it (checked in validate_chat).
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: dict | None = None
    refusal: str | None = None
    audio: dict | None = None


class ToolMessage(Message, tag="tool"):
    content: Content
    tool_call_id: str


class FunctionMessage(Message, tag="function"):  # the API's deprecated predecessor of "tool"
    content: str | None


ROLES = ("system", "developer", "user", "assistant", "tool", "function")
AnyMessage = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)


# --- chat: the request ---------------------------------------------------------------------------


class FunctionDefinition(Struct):
    name: str
    description: str | None = None
    parameters: dict | None = None  # a JSON Schema: whatever its property names are
    strict: bool | None = None


class Tool(Struct):
    type: str
    function: FunctionDefinition | None = None


class ResponseFormat(Struct):
    type: str
    json_schema: dict | None = None


class StreamOptions(Struct):
    include_usage: bool | None = None


class ChatRequest(Struct):
    model: ModelName
    messages: Annotated[list[AnyMessage], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    n: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = None
    function_call: str | dict | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    store: bool | None = None
    metadata: dict | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None


# --- embeddings ----------------------------------------------------------------------------------

Tokens = Annotated[list[Annotated[int, Meta(ge=0)]], Meta(min_length=1)]
# A string, or a list of strings, of token ids, or of token arrays. msgspec allows one array type
# per union, so the list's items are a union and validate_embeddings checks they are all alike.
EmbeddingInput = (
    Annotated[str, Meta(min_length=1)]
    | Annotated[
        list[Annotated[str, Meta(min_length=1)] | Annotated[int, Meta(ge=0)] | Tokens],
        Meta(min_length=1),
    ]
)


class EmbeddingsRequest(Struct):
    model: ModelName
    input: EmbeddingInput
    dimensions: PositiveInt | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


# --- checking and error messages -----------------------------------------------------------------

# msgspec's errors read "Expected `float` <= 2.0 - at `$.temperature`"; the path becomes `param`.
_ERROR = re.compile(r"(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def _bad_request(exc: msgspec.ValidationError, roles: tuple[str, ...] = ROLES) -> BadRequest:
    found = _ERROR.fullmatch(str(exc))
    # A dict's values are at "[...]" (logit_bias[...]); the key is not known, the dict is.
    detail, path = found["detail"], (found["path"] or "").lstrip(".").replace("[...]", "")
    missing = _MISSING.fullmatch(detail)
    if missing:
        param = f"{path}.{missing['field']}" if path else missing["field"]
        return BadRequest(f"Missing required parameter: '{param}'.", param=param)
    detail = detail[:1].lower() + detail[1:]
    if path.endswith(".role") and path.startswith("messages["):
        detail += f"; expected one of {', '.join(roles)}"
    if not path:
        return BadRequest(f"Invalid request body: {detail}.")
    return BadRequest(f"Invalid '{path}': {detail}.", param=path)


def convert(data: dict, schema: type[Struct], *, roles: tuple[str, ...] = ROLES):
    """`data` checked against `schema`; a 400 naming the field (`param`) if it does not fit."""
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        raise _bad_request(exc, roles) from None


def validate_chat(data: dict) -> ChatRequest:
    request = convert(data, ChatRequest)
    for index, message in enumerate(request.messages):
        if (
            type(message) is AssistantMessage
            and message.content is None
            and not (message.tool_calls or message.function_call or message.audio)
            and message.refusal is None
        ):
            param = f"messages[{index}].content"
            raise BadRequest(
                f"Missing required parameter: '{param}' (an assistant message may omit it only "
                "beside 'tool_calls' or 'function_call').",
                param=param,
            )
    return request


def validate_embeddings(data: dict) -> EmbeddingsRequest:
    request = convert(data, EmbeddingsRequest)
    items = request.input
    if isinstance(items, list) and len({type(item) for item in items}) > 1:
        raise BadRequest(
            "Invalid 'input': expected a string, a list of strings, a list of token ids or a "
            "list of token arrays, not a mix.",
            param="input",
        )
    return request
