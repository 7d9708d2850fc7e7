"""Gemini's generateContent format <-> the IR: requests, and embeddings.

Field names follow the API reference (ai.google.dev/api/generate-content, /api/caching for
Content and Part, /api/embeddings). The model is part of the URL
(`models/{model}:generateContent`, `:streamGenerateContent?alt=sse` to stream), not of the
body: request_from_ir returns the body only, and the adapter builds the URL from `model`;
`stream` likewise is the URL's choice, not a body field. This module is the whole codec: it
re-exports the answer half (gemini_output.py) and the error shapes (gemini_errors.py).

Choices where Gemini differs:
- Tool results (functionResponse) name the function, not a call id: the name is found from
  the earlier call with that id in the conversation; a result whose call is absent is refused.
- Tool and output schemas are sent as `parametersJsonSchema` / `responseJsonSchema`, which
  take JSON Schema as it is (the older `parameters` / `responseSchema` take an OpenAPI subset
  that rejects common keywords such as additionalProperties).
- Images by http(s) URL become fileData with the media type guessed from the extension; an
  extension that names no image type is refused (Gemini needs the mimeType).
"""

import base64
import math
import mimetypes
import struct

import orjson

from .errors import Malformed, Unsupported, refuse_choices_and_logprobs
from .gemini_errors import (  # noqa: F401 (the codec's error shapes)
    HTTP_BY_STATUS_NAME,
    STATUS_NAME_BY_HTTP,
    error_body,
    error_from_body,
    retry_delay,
    status_name,
    stream_error,
)
from .gemini_output import (  # noqa: F401 (the codec's answer half)
    SKIP_SIGNATURE,
    call_id,
    finish_from_ir,
    finish_to_ir,
    function_call_part,
    response_from_ir,
    response_to_ir,
    stream_from_ir,
    stream_to_ir,
    tool_input,
    usage_from_ir,
    usage_to_ir,
)
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
    Usage,
    finish_request,
)

NAME = "gemini"
DEFAULTS = Defaults()

# Top-level fields the IR carries; any other (safetySettings, cachedContent, ...) goes to extra.
_CARRIED = frozenset(("contents", "systemInstruction", "tools", "toolConfig", "generationConfig"))
# generationConfig fields carried as they are, both ways: IR name -> Gemini name.
_CONFIG = {
    "max_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_CONFIG_CARRIED = frozenset(_CONFIG.values()) | {
    "stopSequences",
    "candidateCount",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
}
_MODE_OUT = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_MODE_IN = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}


# --- requests: Gemini -> IR (Gemini as the client's dialect) --------------------------------------


def request_to_ir(body: dict) -> ChatRequest:
    try:
        return _request_to_ir(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Unsupported(None, f"the request body is malformed ({exc!r})") from None


def _request_to_ir(body: dict) -> ChatRequest:
    unmapped: list[str] = []
    system = [
        Text(part["text"])
        for part in (body.get("systemInstruction") or {}).get("parts") or ()
        if "text" in part
    ]
    messages: list[Message] = []
    pending: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    calls = 0
    for i, content in enumerate(body["contents"]):
        role = "assistant" if content.get("role") == "model" else "user"
        parts: list = []
        for j, part in enumerate(content.get("parts") or ()):
            param = f"contents[{i}].parts[{j}]"
            if "text" in part:
                if part.get("thought"):
                    parts.append(Thinking(part["text"], part.get("thoughtSignature")))
                else:
                    parts.append(Text(part["text"]))
            elif "inlineData" in part:
                data = part["inlineData"]
                parts.append(Image(media_type=data.get("mimeType"), data=data.get("data")))
            elif "fileData" in part:
                parts.append(Image(url=part["fileData"]["fileUri"]))
            elif "functionCall" in part:
                call = part["functionCall"]
                id_ = call_id(part, calls)
                calls += 1
                pending.setdefault(call["name"], []).append(id_)
                arguments = orjson.dumps(call.get("args") or {}).decode()
                parts.append(ToolCall(id_, call["name"], arguments))
            elif "functionResponse" in part:
                response = part["functionResponse"]
                waiting = pending.get(response["name"]) or []
                id_ = response.get("id") or (waiting.pop(0) if waiting else response["name"])
                text = orjson.dumps(response.get("response") or {}).decode()
                parts.append(ToolResult(id_, [Text(text)]))
            else:
                raise Unsupported(param, "this kind of part cannot be translated")
        messages.append(Message(role, parts, i))
    config = body.get("generationConfig") or {}
    unmapped.extend(f"generationConfig.{k}" for k in config if k not in _CONFIG_CARRIED)
    tools = []
    for i, tool in enumerate(body.get("tools") or ()):
        for key in tool:
            if key != "functionDeclarations":
                raise Unsupported(f"tools[{i}].{key}", f"the {key} tool cannot be translated")
        for declaration in tool.get("functionDeclarations") or ():
            schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
            tools.append(
                Tool(
                    declaration["name"],
                    declaration.get("description"),
                    schema or {"type": "object", "properties": {}},
                )
            )
    return ChatRequest(
        source=NAME,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice_in(body.get("toolConfig")),
        stop=list(config.get("stopSequences") or ()),
        n=config.get("candidateCount"),
        response_format=_response_format_in(config),
        include_usage=True,  # Gemini streams always report usage
        extra={k: v for k, v in body.items() if k not in _CARRIED and v is not None},
        unmapped=unmapped,
        **{name: config.get(field) for name, field in _CONFIG.items()},
    )


def _tool_choice_in(config: dict | None) -> str | NamedTool | None:
    calling = (config or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode")
    if mode is None:
        return None
    names = calling.get("allowedFunctionNames") or ()
    if mode == "ANY" and len(names) == 1:
        return NamedTool(names[0])
    found = _MODE_IN.get(mode)
    if found is None:
        raise Unsupported("toolConfig.functionCallingConfig.mode", f"unknown mode {mode!r}")
    return found


def _response_format_in(config: dict) -> ResponseFormat | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    return ResponseFormat("json_schema", schema) if schema else ResponseFormat("json_object")


# --- requests: IR -> Gemini (Gemini as the provider) ----------------------------------------------


def request_from_ir(
    req: ChatRequest, *, model: str, defaults: Defaults = DEFAULTS
) -> tuple[dict, list[str]]:
    """The generateContent body (`model` goes in the URL, so it is not used here; the
    signature is the codec's). No default max tokens: Gemini does not require one."""
    _refuse(req)
    dropped = list(req.unmapped)
    names: dict[str, str] = {}  # tool call id -> function name, for the results that follow
    contents: list[dict] = []
    for message in req.messages:
        role = "model" if message.role == "assistant" else "user"
        parts = _parts_out(message, names, dropped)
        if not parts:
            continue
        # Consecutive messages of one role become one content (consecutive OpenAI tool
        # messages: one user content of functionResponse parts, as Gemini expects them).
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    body: dict = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": part.text} for part in req.system]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_tool_out(t, dropped) for t in req.tools]}]
    choice = _tool_choice_out(req.tool_choice)
    if choice is not None:
        body["toolConfig"] = {"functionCallingConfig": choice}
    config: dict = {}
    for name, field in _CONFIG.items():
        value = getattr(req, name)
        if value is not None:
            config[field] = value
    if req.stop:
        config["stopSequences"] = req.stop
    if req.response_format is not None:
        config["responseMimeType"] = "application/json"
        if req.response_format.type == "json_schema" and req.response_format.schema:
            config["responseJsonSchema"] = req.response_format.schema
    if config:
        body["generationConfig"] = config
    if req.parallel_tool_calls is False:
        dropped.append("parallel_tool_calls")  # Gemini has no switch for it
    return finish_request(body, req, NAME, dropped, ("user",))


def _refuse(req: ChatRequest) -> None:
    """What generateContent cannot honour here and the client would rely on: a 400 naming it."""
    # candidateCount exists, but a stream carries one candidate here and only candidate 0 is
    # read back: n > 1 would silently return one choice.
    refuse_choices_and_logprobs(
        req, logprobs_message="log probabilities cannot be translated for this model"
    )


def _parts_out(message: Message, names: dict[str, str], dropped: list[str]) -> list[dict]:
    out: list[dict] = []
    calls = 0
    param = f"messages[{message.index}]"
    for part in message.parts:
        kind = type(part)
        if kind is Text:
            if part.text:  # Gemini refuses empty text parts
                out.append({"text": part.text})
        elif kind is Image:
            out.append(_image_out(part, f"{param}.content"))
        elif kind is ToolCall:
            args = tool_input(part.arguments)
            if args is None:
                raise Unsupported(
                    f"{param}.tool_calls[{calls}].function.arguments",
                    "tool-call arguments must be a JSON object",
                )
            # The docs ask for a signature on the first call of a step only (parallel calls
            # after it carry none).
            fallback = SKIP_SIGNATURE if calls == 0 else None
            calls += 1
            names[part.id] = part.name
            out.append(function_call_part(part, fallback=fallback))
        elif kind is ToolResult:
            name = names.get(part.tool_call_id)
            if name is None:
                raise Unsupported(
                    f"{param}.tool_call_id",
                    f"no earlier tool call has the id {part.tool_call_id!r}; this model's "
                    "provider needs the function's name for a tool result",
                )
            out.append({"functionResponse": {"name": name, "response": _result(part, param)}})
        elif kind is Thinking:
            dropped.append("messages[].thinking")
    return out


def _result(part: ToolResult, param: str) -> dict:
    """functionResponse.response is a JSON object: a result that is one is sent as it is, any
    other text under `content` (`error` for a failed call, the key the docs suggest)."""
    if any(type(item) is not Text for item in part.content):
        raise Unsupported(
            f"{param}.content", "images inside tool results cannot be translated for this model"
        )
    text = "".join(item.text for item in part.content)
    if not part.is_error:
        parsed = tool_input(text) if text.lstrip().startswith("{") else None
        if parsed is not None:
            return parsed
    return {"error" if part.is_error else "content": text}


def _image_out(part: Image, param: str) -> dict:
    if part.url is None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    path = part.url.split("?", 1)[0].split("#", 1)[0]
    media_type = mimetypes.guess_type(path)[0]
    if media_type is None or not media_type.startswith("image/"):
        raise Unsupported(
            param,
            "this model's provider needs an image's media type: use a URL ending in .png, "
            ".jpg, .webp, ... or a base64 data: URL",
        )
    return {"fileData": {"mimeType": media_type, "fileUri": part.url}}


def _tool_out(tool: Tool, dropped: list[str]) -> dict:
    out: dict = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parametersJsonSchema"] = tool.parameters
    if tool.strict:
        dropped.append("tools[].function.strict")
    return out


def _tool_choice_out(choice: str | NamedTool | None) -> dict | None:
    if choice is None:
        return None
    if isinstance(choice, NamedTool):
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": _MODE_OUT[choice]}


# --- embeddings -----------------------------------------------------------------------------------


def embed_request_from_openai(body: dict, *, model: str) -> tuple[dict, list[str]]:
    """An OpenAI embeddings body as a batchEmbedContents body (POST
    models/{model}:batchEmbedContents), and the parameters dropped. Token-array inputs are
    refused: Gemini embeds text only."""
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        raise Unsupported("input", "this model embeds text only: give a string or strings")
    dimensions = body.get("dimensions")
    name = model if model.startswith("models/") else f"models/{model}"
    requests = []
    for text in inputs:
        request: dict = {"model": name, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    dropped = [key for key in ("user",) if body.get(key) is not None]
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise Unsupported("encoding_format", "encoding_format must be float or base64")
    return {"requests": requests}, dropped


def estimate_tokens(texts: list[str]) -> int:
    """Gemini reports no token count for embeddings: about four characters a token."""
    return sum(math.ceil(len(text) / 4) for text in texts)


def embed_response_to_openai(
    body: dict, *, model: str, inputs: list[str] | None = None, encoding_format: str | None = None
) -> tuple[dict, Usage]:
    """A batchEmbedContents answer as OpenAI's embeddings list, and its usage. The usage is
    always an estimate (estimate_tokens over `inputs`; 0 without them): say so to the client."""
    try:
        embeddings = body["embeddings"]
        data = []
        for i, embedding in enumerate(embeddings):
            values = embedding["values"]
            if encoding_format == "base64":
                # OpenAI's base64 is the little-endian float32 array.
                values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": i, "embedding": values})
    except (KeyError, TypeError) as exc:
        raise Malformed(f"not a batchEmbedContents answer: {exc!r}") from None
    tokens = estimate_tokens(inputs or [])
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return answer, Usage(input_tokens=tokens)
