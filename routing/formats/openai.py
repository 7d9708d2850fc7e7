"""OpenAI's Chat Completions format <-> the IR: requests (answers are in openai_output.py).

Field names follow the API reference (platform.openai.com/docs/api-reference/chat). The request
decoder assumes a body the OpenAI dialect already validated (gateway/proxy/validation.py); it
still refuses, with the parameter named, whatever the IR cannot carry. This module is the
whole codec: it re-exports the answer half (responses, streams, error shapes).
"""

from .errors import Unsupported
from .errors import openai_error_body as error_body  # noqa: F401
from .errors import openai_stream_error as stream_error  # noqa: F401
from .ir import (
    ChatRequest,
    Defaults,
    Image,
    Message,
    NamedTool,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    finish_request,
)
from .openai_output import (  # noqa: F401 (the codec's answer half)
    finish_from_ir,
    finish_to_ir,
    response_from_ir,
    response_to_ir,
    stream_from_ir,
    stream_to_ir,
    usage_from_ir,
    usage_to_ir,
)

NAME = "openai"
DEFAULTS = Defaults()

# Carried as they are, both ways.
_SCALARS = (
    "temperature",
    "top_p",
    "seed",
    "n",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "user",
)
# Top-level fields the IR carries; any other goes to ChatRequest.extra.
_CARRIED = frozenset(_SCALARS) | {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "functions",
    "function_call",
}


# --- requests -------------------------------------------------------------------------------------


def request_to_ir(body: dict) -> ChatRequest:
    try:
        return _request_to_ir(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        # A shape the dialect's validation let through: still the client's 400, not our 500.
        raise Unsupported(None, f"the request body is malformed ({exc!r})") from None


def _request_to_ir(body: dict) -> ChatRequest:
    unmapped: list[str] = []
    system: list[Text] = []
    messages: list[Message] = []
    for i, message in enumerate(body["messages"]):
        role = message.get("role")
        if message.get("name"):
            unmapped.append("messages[].name")
        if role in ("system", "developer"):
            param = f"messages[{i}].content"
            parts = _parts(message.get("content"), param, unmapped)
            if any(type(part) is not Text for part in parts):
                raise Unsupported(param, "a system message may hold text only")
            system.extend(parts)
        elif role == "user":
            parts = _parts(message.get("content"), f"messages[{i}].content", unmapped)
            messages.append(Message("user", parts, i))
        elif role == "assistant":
            messages.append(_assistant(message, i, unmapped))
        elif role == "tool":
            content = _parts(message.get("content"), f"messages[{i}].content", unmapped)
            result = ToolResult(message["tool_call_id"], content)
            messages.append(Message("user", [result], i))
        else:
            raise Unsupported(
                f"messages[{i}].role",
                f"messages with role {role!r} cannot be translated for this model's provider; "
                "use tool messages",
            )
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise Unsupported(
            "functions",
            "the deprecated functions/function_call parameters cannot be translated for this "
            "model's provider; use tools and tool_choice",
        )
    if body.get("audio") is not None or "audio" in (body.get("modalities") or ()):
        raise Unsupported(
            "modalities", "audio output cannot be translated for this model's provider"
        )
    stop = body.get("stop")
    options = body.get("stream_options") or {}
    max_tokens = body.get("max_completion_tokens")
    return ChatRequest(
        source=NAME,
        messages=messages,
        system=system,
        tools=[_tool_in(tool, i) for i, tool in enumerate(body.get("tools") or ())],
        tool_choice=_tool_choice_in(body.get("tool_choice")),
        max_tokens=max_tokens if max_tokens is not None else body.get("max_tokens"),
        stop=[stop] if isinstance(stop, str) else list(stop or ()),
        response_format=_response_format_in(body.get("response_format")),
        stream=bool(body.get("stream")),
        include_usage=bool(options.get("include_usage")),
        extra={k: v for k, v in body.items() if k not in _CARRIED and v is not None},
        unmapped=unmapped,
        **{name: body.get(name) for name in _SCALARS},
    )


def _parts(content, param: str, unmapped: list[str]) -> list:
    if isinstance(content, str):
        return [Text(content)]
    parts: list = []
    for j, part in enumerate(content or ()):
        kind = part.get("type")
        if kind == "text":
            parts.append(Text(part["text"]))
        elif kind == "image_url":
            parts.append(_image_in(part.get("image_url") or {}, f"{param}[{j}]", unmapped))
        elif kind == "refusal":
            parts.append(Text(part["refusal"]))
        else:
            raise Unsupported(
                f"{param}[{j}].type",
                f"content parts of type {kind!r} cannot be translated for this model's provider",
            )
    return parts


def _image_in(image: dict, param: str, unmapped: list[str]) -> Image:
    url = image.get("url")
    if not isinstance(url, str) or not url:
        raise Unsupported(f"{param}.image_url.url", "an image_url part needs a url")
    if image.get("detail") not in (None, "auto"):
        unmapped.append("image_url.detail")
    if not url.startswith("data:"):
        return Image(url=url)
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not data:
        raise Unsupported(f"{param}.image_url.url", "a data: URL image must be base64-encoded")
    return Image(media_type=media_type, data=data)


def _assistant(message: dict, i: int, unmapped: list[str]) -> Message:
    if message.get("function_call") is not None or message.get("audio") is not None:
        raise Unsupported(
            f"messages[{i}]",
            "assistant function_call and audio cannot be translated for this model's provider",
        )
    parts = _parts(message.get("content"), f"messages[{i}].content", unmapped)
    if message.get("refusal"):
        parts.append(Text(message["refusal"]))
    for j, call in enumerate(message.get("tool_calls") or ()):
        if call.get("type", "function") != "function":
            raise Unsupported(
                f"messages[{i}].tool_calls[{j}].type", "only function tool calls can be translated"
            )
        function = call["function"]
        parts.append(
            ToolCall(call.get("id") or f"call_{i}_{j}", function["name"], function["arguments"])
        )
    return Message("assistant", parts, i)


def _tool_in(tool: dict, i: int) -> Tool:
    function = tool.get("function")
    if tool.get("type") != "function" or not function:
        raise Unsupported(f"tools[{i}].type", "only function tools can be translated")
    return Tool(
        function["name"],
        function.get("description"),
        function.get("parameters") or {"type": "object", "properties": {}},
        function.get("strict"),
    )


def _tool_choice_in(choice) -> str | NamedTool | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return NamedTool(choice["function"]["name"])
    raise Unsupported("tool_choice", "this tool_choice cannot be translated")


def _response_format_in(value: dict | None) -> ResponseFormat | None:
    if value is None or value.get("type") == "text":
        return None
    if value.get("type") == "json_object":
        return ResponseFormat("json_object")
    if value.get("type") == "json_schema":
        spec = value.get("json_schema") or {}
        return ResponseFormat(
            "json_schema", spec.get("schema"), spec.get("name"), spec.get("strict")
        )
    raise Unsupported("response_format", f"response_format {value.get('type')!r} is not known")


def request_from_ir(
    req: ChatRequest, *, model: str, defaults: Defaults = DEFAULTS
) -> tuple[dict, list[str]]:
    dropped = list(req.unmapped)
    messages: list[dict] = []
    if req.system:
        messages.append({"role": "system", "content": _content_out(req.system)})
    for message in req.messages:
        if message.role == "assistant":
            messages.append(_assistant_out(message, dropped))
        else:
            _user_out(message, messages, dropped)
    body: dict = {"model": model, "messages": messages}
    if req.max_tokens is not None:
        body[defaults.max_tokens_field] = req.max_tokens
    for name in _SCALARS:
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.top_k is not None:
        dropped.append("top_k")
    if req.stop:
        body["stop"] = req.stop
    if req.tools:
        body["tools"] = [_tool_out(tool) for tool in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        body["tool_choice"] = (
            choice
            if isinstance(choice, str)
            else {"type": "function", "function": {"name": choice.name}}
        )
    if req.response_format is not None:
        body["response_format"] = _response_format_out(req.response_format)
    if req.stream:
        # Always asked for: the gateway settles on the provider's own count. The client gets
        # the usage chunk only if it asked (StreamEncoder(include_usage=...)).
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return finish_request(body, req, NAME, dropped)


def _content_out(parts: list) -> str | list[dict]:
    if len(parts) == 1 and type(parts[0]) is Text:
        return parts[0].text
    return [_part_out(part) for part in parts]


def _part_out(part) -> dict:
    if type(part) is Text:
        return {"type": "text", "text": part.text}
    url = part.url or f"data:{part.media_type};base64,{part.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_out(message: Message, out: list[dict], dropped: list[str]) -> None:
    # Tool results become tool messages of their own, the rest a user message, in order (the
    # Messages API puts tool results first, which is where OpenAI needs its tool messages).
    pending: list = []
    for part in message.parts:
        kind = type(part)
        if kind is ToolResult:
            if pending:
                out.append({"role": "user", "content": _content_out(pending)})
                pending = []
            if any(type(item) is not Text for item in part.content):
                raise Unsupported(
                    f"messages[{message.index}].content",
                    "images inside tool results cannot be translated for this model's provider",
                )
            if part.is_error:
                dropped.append("tool_result.is_error")
            content = _content_out(part.content) if part.content else ""
            out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": content})
        elif kind is Text or kind is Image:
            pending.append(part)
        else:
            raise Unsupported(
                f"messages[{message.index}].content",
                f"a user message cannot hold {kind.__name__} content",
            )
    if pending:
        out.append({"role": "user", "content": _content_out(pending)})


def _assistant_out(message: Message, dropped: list[str]) -> dict:
    texts: list = []
    calls: list[dict] = []
    for part in message.parts:
        kind = type(part)
        if kind is Text:
            texts.append(part)
        elif kind is ToolCall:
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments},
                }
            )
        elif kind is Thinking:
            dropped.append("messages[].thinking")
        else:
            raise Unsupported(
                f"messages[{message.index}].content",
                f"an assistant message cannot hold {kind.__name__} content",
            )
    out: dict = {"role": "assistant", "content": _content_out(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def _tool_out(tool: Tool) -> dict:
    function: dict = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _response_format_out(value: ResponseFormat) -> dict:
    if value.type == "json_object":
        return {"type": "json_object"}
    spec: dict = {"name": value.name or "response", "schema": value.schema or {}}
    # Anthropic's structured outputs always constrain decoding: that is OpenAI's strict mode.
    spec["strict"] = True if value.strict is None else value.strict
    return {"type": "json_schema", "json_schema": spec}
