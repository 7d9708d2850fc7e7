"""Anthropic's Messages API format <-> the IR: requests (answers are in anthropic_output.py).

Field names follow the API reference (docs.anthropic.com/en/api/messages) and the official SDK's
types. This module is the whole codec: it re-exports the answer half (responses, streams, error
shapes).
"""

import orjson

from .anthropic_output import (  # noqa: F401 (the codec's answer half)
    finish_from_ir,
    finish_to_ir,
    response_from_ir,
    response_to_ir,
    stream_from_ir,
    stream_to_ir,
    tool_input,
    usage_from_ir,
    usage_to_ir,
)
from .errors import Unsupported, refuse_choices_and_logprobs
from .errors import anthropic_error_body as error_body  # noqa: F401
from .errors import anthropic_stream_error as stream_error  # noqa: F401
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

NAME = "anthropic"
DEFAULTS = Defaults()

# Top-level fields the IR carries; any other (thinking, service_tier, ...) goes to `extra`.
_CARRIED = frozenset(
    (
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "output_config",
    )
)


# --- requests -------------------------------------------------------------------------------------


def request_to_ir(body: dict) -> ChatRequest:
    try:
        return _request_to_ir(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        # A shape the dialect's validation let through: still the client's 400, not our 500.
        raise Unsupported(None, f"the request body is malformed ({exc!r})") from None


def _request_to_ir(body: dict) -> ChatRequest:
    unmapped: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        system_parts = [Text(system)]
    else:
        system_parts = _blocks_in(system or (), "system", unmapped)
        if any(type(part) is not Text for part in system_parts):
            raise Unsupported("system", "the system prompt may hold text blocks only")
    messages = []
    for i, message in enumerate(body["messages"]):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Unsupported(f"messages[{i}].role", f"unknown role {role!r}")
        content = message.get("content")
        param = f"messages[{i}].content"
        parts = (
            [Text(content)] if isinstance(content, str) else _blocks_in(content, param, unmapped)
        )
        messages.append(Message(role, parts, i))
    if body.get("mcp_servers"):
        # Like server tools: the model would lose tools the client counts on.
        raise Unsupported(
            "mcp_servers", "MCP servers cannot be translated for this model's provider"
        )
    tool_choice, parallel = _tool_choice_in(body.get("tool_choice"))
    metadata = body.get("metadata") or {}
    unmapped.extend(f"metadata.{key}" for key in metadata if key != "user_id")
    output = body.get("output_config") or {}
    unmapped.extend(f"output_config.{key}" for key in output if key != "format")
    output_format = output.get("format")
    return ChatRequest(
        source=NAME,
        messages=messages,
        system=system_parts,
        tools=[_tool_in(tool, i, unmapped) for i, tool in enumerate(body.get("tools") or ())],
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=list(body.get("stop_sequences") or ()),
        response_format=(
            ResponseFormat("json_schema", output_format.get("schema")) if output_format else None
        ),
        stream=bool(body.get("stream")),
        include_usage=True,  # Anthropic streams always report usage
        user=metadata.get("user_id"),
        extra={k: v for k, v in body.items() if k not in _CARRIED and v is not None},
        unmapped=unmapped,
    )


def _blocks_in(blocks, param: str, unmapped: list[str]) -> list:
    parts: list = []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if block.get("cache_control") is not None:
            unmapped.append("cache_control")
        if kind == "text":
            parts.append(Text(block["text"]))
        elif kind == "image":
            parts.append(_image_in(block.get("source") or {}, f"{param}[{j}].source"))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            parts.append(ToolCall(block["id"], block["name"], arguments))
        elif kind == "tool_result":
            content = block.get("content")
            inner = f"{param}[{j}].content"
            if isinstance(content, str):
                result = [Text(content)]
            else:
                result = _blocks_in(content or (), inner, unmapped)
                if any(type(part) not in (Text, Image) for part in result):
                    raise Unsupported(inner, "a tool result may hold text and images only")
            parts.append(ToolResult(block["tool_use_id"], result, bool(block.get("is_error"))))
        elif kind == "thinking":
            parts.append(Thinking(block.get("thinking") or "", block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(Thinking(redacted=block.get("data") or ""))
        else:
            raise Unsupported(
                f"{param}[{j}].type",
                f"content blocks of type {kind!r} cannot be translated for this model's provider",
            )
    return parts


def _image_in(source: dict, param: str) -> Image:
    kind = source.get("type")
    if kind == "base64":
        return Image(media_type=source.get("media_type"), data=source.get("data"))
    if kind == "url":
        return Image(url=source.get("url"))
    raise Unsupported(f"{param}.type", f"image sources of type {kind!r} cannot be translated")


def _tool_in(tool: dict, i: int, unmapped: list[str]) -> Tool:
    # A client tool has no type or "custom"; server tools (web search, bash, ...) run at
    # Anthropic and have no equivalent elsewhere.
    if tool.get("type") not in (None, "custom"):
        raise Unsupported(
            f"tools[{i}].type",
            f"the server tool {tool.get('type')!r} cannot be translated for this model's provider",
        )
    if tool.get("cache_control") is not None:
        unmapped.append("cache_control")
    return Tool(
        tool["name"],
        tool.get("description"),
        tool.get("input_schema") or {"type": "object", "properties": {}},
        tool.get("strict"),
    )


def _tool_choice_in(choice: dict | None) -> tuple[str | NamedTool | None, bool | None]:
    if choice is None:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "tool":
        return NamedTool(choice["name"]), parallel
    found = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
    if found is None:
        raise Unsupported("tool_choice.type", f"unknown tool_choice type {kind!r}")
    return found, parallel


def request_from_ir(
    req: ChatRequest, *, model: str, defaults: Defaults = DEFAULTS
) -> tuple[dict, list[str]]:
    _refuse(req)
    dropped = list(req.unmapped)
    messages: list[dict] = []
    for message in req.messages:
        blocks = _blocks_out(message)
        if not blocks:
            continue  # nothing to say (an empty OpenAI message); Anthropic refuses empty ones
        # The Messages API alternates roles: consecutive messages of one role become one
        # (consecutive OpenAI tool messages become one user message of tool_result blocks).
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": message.role, "content": blocks})
    max_tokens = req.max_tokens if req.max_tokens is not None else defaults.max_tokens
    body: dict = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if req.system:
        system = req.system
        body["system"] = (
            system[0].text
            if len(system) == 1
            else [{"type": "text", "text": part.text} for part in system]
        )
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.tools:
        body["tools"] = [_tool_out(tool) for tool in req.tools]
    choice = _tool_choice_out(req)
    if choice is not None:
        body["tool_choice"] = choice
    if req.user is not None:
        body["metadata"] = {"user_id": req.user}
    if req.response_format is not None:  # json_schema: _refuse turned json_object away
        body["output_config"] = {
            "format": {"type": "json_schema", "schema": req.response_format.schema or {}}
        }
    if req.stream:
        body["stream"] = True
    return finish_request(
        body, req, NAME, dropped, ("seed", "presence_penalty", "frequency_penalty")
    )


def _refuse(req: ChatRequest) -> None:
    """What a Messages API call cannot honour and the client would rely on: a 400 naming it."""
    refuse_choices_and_logprobs(req)
    if req.temperature is not None and req.temperature > 1:
        # Not clamped: 1.5 asks for more randomness than the provider can give, and a silent
        # 1.0 would be a different request. Not rescaled either: the scales are not linear.
        raise Unsupported("temperature", "this model accepts a temperature between 0 and 1")
    if req.response_format is not None and req.response_format.type != "json_schema":
        raise Unsupported(
            "response_format",
            "this model has no JSON mode without a schema; use response_format json_schema",
        )


def _blocks_out(message: Message) -> list[dict]:
    blocks: list[dict] = []
    calls = 0
    for part in message.parts:
        kind = type(part)
        if kind is Text:
            if part.text:  # the Messages API refuses empty text blocks
                blocks.append({"type": "text", "text": part.text})
        elif kind is ToolCall:
            param = f"messages[{message.index}].tool_calls[{calls}].function.arguments"
            calls += 1
            input_ = tool_input(part.arguments)
            if input_ is None:
                raise Unsupported(param, "tool-call arguments must be a JSON object")
            blocks.append({"type": "tool_use", "id": part.id, "name": part.name, "input": input_})
        elif kind is ToolResult:
            block: dict = {"type": "tool_result", "tool_use_id": part.tool_call_id}
            content = part.content
            if len(content) == 1 and type(content[0]) is Text:
                block["content"] = content[0].text
            elif content:
                block["content"] = [
                    _image_out(p) if type(p) is Image else _text(p) for p in content
                ]
            if part.is_error:
                block["is_error"] = True
            blocks.append(block)
        elif kind is Image:
            blocks.append(_image_out(part))
        elif kind is Thinking:
            if part.redacted is not None:
                blocks.append({"type": "redacted_thinking", "data": part.redacted})
            else:
                thinking = {"type": "thinking", "thinking": part.text}
                blocks.append({**thinking, "signature": part.signature or ""})
    return blocks


def _text(part: Text) -> dict:
    return {"type": "text", "text": part.text}


def _image_out(part: Image) -> dict:
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    return {"type": "image", "source": source}


def _tool_out(tool: Tool) -> dict:
    out: dict = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice_out(req: ChatRequest) -> dict | None:
    choice = req.tool_choice
    if isinstance(choice, NamedTool):
        out = {"type": "tool", "name": choice.name}
    elif choice is None:
        if req.parallel_tool_calls is not False or not req.tools:
            return None
        out = {"type": "auto"}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    # OpenAI's parallel_tool_calls=false is Anthropic's disable_parallel_tool_use=true.
    if req.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out
