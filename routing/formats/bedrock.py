"""Amazon Bedrock's Converse API format <-> the IR: requests and Titan embeddings (answers,
streams and errors are in bedrock_output.py).

Field names follow the Bedrock Runtime API reference (Converse, ConverseStream, ContentBlock,
InferenceConfiguration, ToolConfiguration). A Converse body has no `model` and no `stream`: the
model id is in the URL (`/model/{modelId}/converse` or `/converse-stream`), so `request_from_ir`
ignores `model` and the adapter picks the path from `req.stream`. This module is the whole
codec: it re-exports the answer half, the error mapping (bedrock_errors.py) and Titan
embeddings (bedrock_embeddings.py).

Bedrock is a provider format only: no client speaks it to the gateway. The decoding half of the
request (request_to_ir) and the encoding half of answers exist for symmetry and round-trip
tests. What the Converse API cannot honour:
- image URLs: Bedrock does not fetch them (only bytes or S3 locations) -> refused, naming the part;
- response_format (json_object and json_schema): Converse has no JSON mode -> refused;
- n > 1, logprobs / top_logprobs -> refused;
- tool_choice "none": Converse has no such choice, so the tools are not sent at all (the model
  then cannot call one). A conversation that already holds tool calls needs its toolConfig
  (Bedrock refuses it otherwise), so there the tools stay and `tool_choice` is listed as dropped;
- seed, presence_penalty, frequency_penalty, top_k, user, parallel_tool_calls=false, a tool's
  `strict` -> dropped (listed in x-gateway-dropped-params).
"""

import orjson

from .bedrock_embeddings import (  # noqa: F401 (Titan and Cohere embeddings)
    cohere_embed_request_from_openai,
    cohere_embed_response_to_openai,
    embed_request_from_openai,
    embed_responses_to_openai,
)
from .bedrock_errors import Fault, error_from_response, error_type  # noqa: F401
from .bedrock_output import (  # noqa: F401 (the codec's answer half)
    error_body,
    finish_from_ir,
    finish_to_ir,
    response_from_ir,
    response_to_ir,
    stream_error,
    stream_from_ir,
    stream_to_ir,
    usage_from_ir,
    usage_to_ir,
)
from .errors import Unsupported, refuse_choices_and_logprobs
from .ir import (
    ChatRequest,
    Defaults,
    Image,
    Message,
    NamedTool,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    finish_request,
)

NAME = "bedrock"
DEFAULTS = Defaults()

# Converse's image formats, by media type (ImageBlock.format).
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}

# Top-level fields the IR carries; any other (additionalModelRequestFields, guardrailConfig,
# performanceConfig, ...) goes to `extra`.
_CARRIED = frozenset(("messages", "system", "inferenceConfig", "toolConfig", "modelId"))


# --- requests: Converse -> IR (symmetry; Bedrock is never a client dialect) -----------------------


def request_to_ir(body: dict) -> ChatRequest:
    try:
        return _request_to_ir(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Unsupported(None, f"the request body is malformed ({exc!r})") from None


def _request_to_ir(body: dict) -> ChatRequest:
    unmapped: list[str] = []
    system: list[Text] = []
    for j, block in enumerate(body.get("system") or ()):
        if "text" not in block:
            unmapped.append(f"system[{j}]")  # guardContent, cachePoint
            continue
        system.append(Text(block["text"]))
    messages = []
    for i, message in enumerate(body["messages"]):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Unsupported(f"messages[{i}].role", f"unknown role {role!r}")
        parts = _blocks_in(message.get("content") or (), f"messages[{i}].content", unmapped)
        messages.append(Message(role, parts, i))
    config = body.get("inferenceConfig") or {}
    tools: list[Tool] = []
    choice = None
    tool_config = body.get("toolConfig") or {}
    for i, tool in enumerate(tool_config.get("tools") or ()):
        spec = tool.get("toolSpec")
        if spec is None:
            unmapped.append(f"toolConfig.tools[{i}]")  # cachePoint
            continue
        schema = (spec.get("inputSchema") or {}).get("json")
        tools.append(
            Tool(
                spec["name"],
                spec.get("description"),
                schema or {"type": "object", "properties": {}},
            )
        )
    found = tool_config.get("toolChoice")
    if found:
        if "tool" in found:
            choice = NamedTool(found["tool"]["name"])
        elif "any" in found:
            choice = "required"
        else:
            choice = "auto"
    return ChatRequest(
        source=NAME,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=choice,
        max_tokens=config.get("maxTokens"),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        stop=list(config.get("stopSequences") or ()),
        include_usage=True,  # ConverseStream always ends with its metadata (usage) event
        extra={k: v for k, v in body.items() if k not in _CARRIED and v is not None},
        unmapped=unmapped,
    )


def _blocks_in(blocks, param: str, unmapped: list[str]) -> list:
    parts: list = []
    for j, block in enumerate(blocks):
        if "text" in block:
            parts.append(Text(block["text"]))
        elif "image" in block:
            parts.append(_image_in(block["image"], f"{param}[{j}].image"))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            parts.append(ToolCall(use["toolUseId"], use["name"], arguments))
        elif "toolResult" in block:
            result = block["toolResult"]
            content: list = []
            for k, item in enumerate(result.get("content") or ()):
                if "text" in item:
                    content.append(Text(item["text"]))
                elif "json" in item:
                    content.append(Text(orjson.dumps(item["json"]).decode()))
                elif "image" in item:
                    content.append(
                        _image_in(item["image"], f"{param}[{j}].toolResult.content[{k}]")
                    )
                else:
                    raise Unsupported(
                        f"{param}[{j}].toolResult.content[{k}]",
                        "a tool result may hold text, json and images only",
                    )
            is_error = result.get("status") == "error"
            parts.append(ToolResult(result["toolUseId"], content, is_error))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            if "redactedContent" in reasoning:
                parts.append(Thinking(redacted=reasoning["redactedContent"]))
            else:
                text = reasoning.get("reasoningText") or {}
                parts.append(Thinking(text.get("text") or "", text.get("signature")))
        elif "cachePoint" in block:
            unmapped.append("cachePoint")
        else:
            kind = next(iter(block), None)
            raise Unsupported(
                f"{param}[{j}]",
                f"content blocks of type {kind!r} cannot be translated for this model's provider",
            )
    return parts


def _image_in(image: dict, param: str) -> Image:
    source = image.get("source") or {}
    if "bytes" not in source:
        raise Unsupported(f"{param}.source", "only images given as bytes can be translated")
    media_type = _MEDIA_TYPES.get(image.get("format"))
    if media_type is None:
        raise Unsupported(f"{param}.format", f"unknown image format {image.get('format')!r}")
    return Image(media_type=media_type, data=source["bytes"])


# --- requests: IR -> Converse ---------------------------------------------------------------------


def request_from_ir(
    req: ChatRequest, *, model: str, defaults: Defaults = DEFAULTS
) -> tuple[dict, list[str]]:
    """The Converse body (no model, no stream flag: both are in the URL) and the dropped
    parameters. max_tokens is sent only when the client gave one: Converse does not require
    it, and the model's own default is what an unbounded client asked for."""
    _refuse(req)
    dropped = list(req.unmapped)
    has_tool_blocks = False
    messages: list[dict] = []
    for message in req.messages:
        blocks = _blocks_out(message)
        if not blocks:
            continue  # Converse refuses messages without content
        has_tool_blocks = has_tool_blocks or any(
            "toolUse" in block or "toolResult" in block for block in blocks
        )
        # Converse alternates roles, as the Messages API does: consecutive messages of one
        # role (an OpenAI assistant turn, then several tool messages) become one.
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": message.role, "content": blocks})
    body: dict = {"messages": messages}
    system = [{"text": part.text} for part in req.system if part.text.strip()]
    if system:
        body["system"] = system
    config: dict = {}
    if req.max_tokens is not None:
        config["maxTokens"] = req.max_tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.stop:
        config["stopSequences"] = req.stop
    if config:
        body["inferenceConfig"] = config
    tool_config = _tool_config_out(req, has_tool_blocks, dropped)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if req.parallel_tool_calls is False:
        dropped.append("parallel_tool_calls")
    return finish_request(
        body, req, NAME, dropped, ("seed", "presence_penalty", "frequency_penalty", "top_k", "user")
    )


def _refuse(req: ChatRequest) -> None:
    """What a Converse call cannot honour and the client would rely on: a 400 naming it."""
    refuse_choices_and_logprobs(req)
    if req.response_format is not None:
        # Dropping it would hand the client prose where it parses JSON.
        raise Unsupported(
            "response_format",
            "this model's provider (Bedrock Converse) has no JSON mode; ask for JSON in the "
            "prompt, or use a tool whose input schema is the shape you need",
        )


def _blocks_out(message: Message) -> list[dict]:
    blocks: list[dict] = []
    calls = 0
    for j, part in enumerate(message.parts):
        kind = type(part)
        if kind is Text:
            if part.text.strip():  # Converse refuses blank text blocks
                blocks.append({"text": part.text})
        elif kind is Image:
            blocks.append(_image_out(part, f"messages[{message.index}].content[{j}]"))
        elif kind is ToolCall:
            param = f"messages[{message.index}].tool_calls[{calls}].function.arguments"
            calls += 1
            input_ = _tool_input(part.arguments)
            if input_ is None:
                raise Unsupported(param, "tool-call arguments must be a JSON object")
            use = {"toolUseId": part.id, "name": part.name, "input": input_}
            blocks.append({"toolUse": use})
        elif kind is ToolResult:
            param = f"messages[{message.index}].content"
            content = [
                _image_out(item, param) if type(item) is Image else {"text": item.text}
                for item in part.content
                if type(item) is Image or item.text.strip()
            ]
            result = {
                "toolUseId": part.tool_call_id,
                # Converse refuses blank text here too, and a result needs content.
                "content": content or [{"text": "(empty)"}],
                "status": "error" if part.is_error else "success",
            }
            blocks.append({"toolResult": result})
        elif kind is Thinking:
            if part.redacted is not None:
                blocks.append({"reasoningContent": {"redactedContent": part.redacted}})
            else:
                text: dict = {"text": part.text}
                if part.signature:
                    text["signature"] = part.signature
                blocks.append({"reasoningContent": {"reasoningText": text}})
    return blocks


def _image_out(part: Image, param: str) -> dict:
    if part.url is not None:
        raise Unsupported(
            param,
            "this model's provider (Bedrock) does not fetch image URLs; send the image as a "
            "base64 data: URL",
        )
    found = IMAGE_FORMATS.get((part.media_type or "").lower())
    if found is None:
        raise Unsupported(
            param, f"image type {part.media_type!r} is not one of png, jpeg, gif or webp"
        )
    # The JSON API takes the bytes base64-encoded, as the data: URL already has them.
    return {"image": {"format": found, "source": {"bytes": part.data}}}


def _tool_input(arguments: str) -> dict | None:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _tool_config_out(req: ChatRequest, has_tool_blocks: bool, dropped: list[str]) -> dict | None:
    if not req.tools:
        if not has_tool_blocks:
            return None
        # Converse refuses a conversation holding toolUse/toolResult blocks without a
        # toolConfig, even when the client offers no tools this turn (OpenAI accepts it): the
        # tools the history called are declared, with an open schema, and no choice is forced.
        names = {
            part.name: None
            for message in req.messages
            for part in message.parts
            if type(part) is ToolCall
        } or {"none": None}
        schema = {"json": {"type": "object"}}
        return {"tools": [{"toolSpec": {"name": n, "inputSchema": schema}} for n in names]}
    choice = req.tool_choice
    if choice == "none":
        if not has_tool_blocks:
            return None  # no tools offered: the model cannot call one, which is "none" exactly
        dropped.append("tool_choice")
    tools = []
    for tool in req.tools:
        spec: dict = {"name": tool.name, "inputSchema": {"json": tool.parameters}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict:
            dropped.append("tools[].function.strict")
        tools.append({"toolSpec": spec})
    out: dict = {"tools": tools}
    if isinstance(choice, NamedTool):
        out["toolChoice"] = {"tool": {"name": choice.name}}
    elif choice == "required":
        out["toolChoice"] = {"any": {}}
    elif choice == "auto":
        out["toolChoice"] = {"auto": {}}
    return out
