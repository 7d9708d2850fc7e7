"""A fake Gemini API (generativelanguage, v1beta and v1) speaking its REST wire format.

References: https://ai.google.dev/api/generate-content (generateContent,
streamGenerateContent, GenerateContentResponse, FinishReason, BlockReason),
https://ai.google.dev/gemini-api/docs/function-calling, https://ai.google.dev/api/embeddings,
https://ai.google.dev/gemini-api/docs/troubleshooting (error statuses).

Endpoints: POST /{v1beta|v1}/models/{model}:generateContent, :streamGenerateContent (with
`alt=sse` an SSE stream of GenerateContentResponse chunks, each `data: {...}` ended by a blank
CRLF line; without it one JSON array), :countTokens, :embedContent, :batchEmbedContents; GET
/{version}/models.

What it checks, as the API does: the key in `x-goog-api-key` or the `key` query parameter
(none: 403 PERMISSION_DENIED; wrong: 400 INVALID_ARGUMENT with reason API_KEY_INVALID),
unknown JSON fields (the API refuses them; snake_case and camelCase names are both accepted, as
protobuf's JSON mapping does), `contents` present with roles user/model and non-empty parts,
base64 of inlineData, functionCallingConfig modes.

Answers follow tests/fakes/rules.py. Function calls come whole in one chunk (Gemini does not
stream arguments); text comes in several. responseMimeType "application/json" makes the reply
the JSON object {"echo": <text>}. Errors are {"error": {"code", "message", "status",
"details"}}; a 429 carries a google.rpc.RetryInfo (`retry_delay` field of `fail`), not a
Retry-After header.
"""

import base64
import binascii
import json
import re

from . import rules
from .base import FakeProvider, Fault, ReceivedRequest, Reply, json_reply

API_KEY = "AIza-fake-gemini-key"
_PATH = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):(\w+)$")
_METHODS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent")
_METHODS += ("batchEmbedContents",)
_REQUEST_FIELDS = {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction"}
_REQUEST_FIELDS |= {"generationConfig", "cachedContent", "model"}
_CONFIG_FIELDS = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema"}
_CONFIG_FIELDS |= {"responseModalities", "candidateCount", "maxOutputTokens", "temperature"}
_CONFIG_FIELDS |= {"topP", "topK", "seed", "presencePenalty", "frequencyPenalty", "logprobs"}
_CONFIG_FIELDS |= {"responseLogprobs", "thinkingConfig", "speechConfig", "mediaResolution"}
_PART_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought"}
_PART_FIELDS |= {"thoughtSignature", "executableCode", "codeExecutionResult", "videoMetadata"}
_STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_JSON_TYPE = "application/json; charset=UTF-8"


class _Invalid(Exception):
    pass


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _camel_keys(value: object, where: str, allowed: set[str] | None = None) -> dict:
    """One level of a message with snake_case names made camelCase; unknown names refused."""
    if not isinstance(value, dict):
        return {}
    out = {camel(k): v for k, v in value.items()}
    for original in value:
        if allowed is not None and camel(original) not in allowed:
            at = f" at '{where}'" if where else ""
            raise _Invalid(
                f'Invalid JSON payload received. Unknown name "{original}"{at}: Cannot find field.'
            )
    return out


def sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\r\n\r\n"


class FakeGemini(FakeProvider):
    def __init__(self, *, api_key: str = API_KEY, models=None, reply: str | None = None):
        super().__init__()
        self.api_key = api_key
        self.models = set(models) if models else None  # None: every model exists
        self.reply = reply

    # --- protocol -------------------------------------------------------------------------------

    def route(self, method, path, query, body):
        if method == "GET" and re.fullmatch(r"/(v1beta|v1|v1alpha)/models", path):
            return "models", None
        one = re.fullmatch(r"/(v1beta|v1|v1alpha)/models/([^/:]+)", path)
        if method == "GET" and one:  # models.get: one model's entry
            return "model", one.group(2)
        found = _PATH.match(path)
        if method == "POST" and found and found.group(3) in _METHODS:
            return found.group(3), found.group(2)
        return None

    def authenticate(self, request: ReceivedRequest) -> Reply | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self.error_reply(
                403,
                message="Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if key != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            localized = {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            }
            return self.error_reply(400, message=message, details=[info, localized])
        return None

    def error_reply(self, status: int, **fields) -> Reply:
        name, message = _STATUSES.get(status, ("UNKNOWN", f"HTTP {status}"))
        error = {"code": status, "message": fields.get("message", message)}
        error["status"] = fields.get("status", name)
        details = fields.get("details")
        if details is None and status == 429:
            violation = {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": "fake"},
                "quotaValue": "10",
            }
            quota = {"@type": "type.googleapis.com/google.rpc.QuotaFailure"}
            retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}
            retry["retryDelay"] = fields.get("retry_delay", "1s")
            details = [{**quota, "violations": [violation]}, retry]
        if details:
            error["details"] = details
        reply = json_reply({"error": error}, status)
        reply.content_type = _JSON_TYPE
        return reply

    def stream_error(self, fault: Fault) -> bytes:
        error = {"code": 500, "message": _STATUSES[500][1], "status": "INTERNAL"}
        return sse({"error": {**error, **(fault.error or {})}})

    def handle(self, request: ReceivedRequest) -> Reply:
        operation, model = request.operation, request.model
        if operation == "models":
            names = sorted(self.models or {"gemini-fake"})
            return json_reply({"models": [{"name": f"models/{n}"} for n in names]})
        if operation == "model" and (self.models is None or model in self.models):
            return json_reply({"name": f"models/{model}"})
        if self.models is not None and model not in self.models:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{operation}. Call ListModels to see the list of available models and their "
                "supported methods."
            )
            return self.error_reply(404, message=message)
        body = request.body if isinstance(request.body, dict) else {}
        try:
            if operation == "embedContent":
                return json_reply({"embedding": _embed(model, body, "")})
            if operation == "batchEmbedContents":
                return json_reply({"embeddings": _batch_embed(model, body)})
            if operation == "countTokens":
                inner = body.get("generateContentRequest") or body
                return json_reply({"totalTokens": _prompt_tokens(_parse(inner))[0]})
            parsed = _parse(body)
        except _Invalid as invalid:
            return self.error_reply(400, message=str(invalid))
        chunks = self._answer(model, parsed)
        if operation == "generateContent":
            reply = json_reply(chunks[-1] if len(chunks) == 1 else _merge(chunks))
        elif request.query.get("alt") == "sse":
            reply = Reply(events=[sse(c) for c in chunks], content_type="text/event-stream")
        else:
            reply = json_reply(chunks)
        if reply.events is None:
            reply.content_type = _JSON_TYPE
        return reply

    # --- the answer -----------------------------------------------------------------------------

    def _answer(self, model: str, request: dict) -> list[dict]:
        """The response as stream chunks; generateContent merges them into one."""
        prompt, details = _prompt_tokens(request)
        base = {"modelVersion": model, "responseId": self.next_id("fake-response-")}
        last = request["contents"][-1]
        text = " ".join(p["text"] for p in last["parts"] if "text" in p)
        answers = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        usage["promptTokensDetails"] = details
        if rules.UNSAFE_PROMPT in text:
            feedback = {"blockReason": "SAFETY", "safetyRatings": [_rating(blocked=True)]}
            return [{"promptFeedback": feedback, "usageMetadata": usage, **base}]
        config = request.get("generationConfig") or {}
        call = None if answers else _function_to_call(request, text)
        if rules.UNSAFE_REPLY in text:
            candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": [_rating(True)]}
            return [{"candidates": [candidate], "usageMetadata": usage, **base}]
        if call is not None:
            pieces, finish, output = [[{"functionCall": call}]], "STOP", rules.compact(call["args"])
        else:
            if self.reply is not None:
                answer = self.reply
            elif answers:
                answer = rules.tool_result_reply(" ".join(rules.compact(a) for a in answers))
            elif config.get("responseMimeType") == "application/json":
                answer = json.dumps({"echo": text})
            else:
                answer = rules.reply_text(text)
            answer, reason, _ = rules.apply_limits(
                answer, config.get("maxOutputTokens"), config.get("stopSequences")
            )
            finish = "MAX_TOKENS" if reason == "max_tokens" else "STOP"
            pieces, output = [[{"text": p}] for p in rules.split_text(answer)] or [[]], answer
        chunks = []
        for index, parts in enumerate(pieces):
            candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
            chunk_usage = dict(usage)
            if index == len(pieces) - 1:
                candidate["finishReason"] = finish
                produced = rules.count_tokens(output)
                chunk_usage.update(candidatesTokenCount=produced, totalTokenCount=prompt + produced)
            chunks.append({"candidates": [candidate], "usageMetadata": chunk_usage, **base})
        return chunks


def _merge(chunks: list[dict]) -> dict:
    """One generateContent response from stream chunks: text parts joined."""
    text = "".join(c["candidates"][0]["content"]["parts"][0].get("text", "") for c in chunks)
    merged = json.loads(json.dumps(chunks[-1]))
    merged["candidates"][0]["content"]["parts"] = [{"text": text}]
    return merged


def _rating(blocked: bool = False) -> dict:
    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
    return {**rating, "blocked": True} if blocked else rating


def _function_to_call(request: dict, text: str) -> dict | None:
    declarations = [d for tool in request.get("tools") or [] for d in tool["functionDeclarations"]]
    config = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    if not declarations or mode == "NONE":
        return None
    allowed = config.get("allowedFunctionNames") or [d["name"] for d in declarations]
    if mode in ("ANY", "VALIDATED") or rules.wants_tool(text):
        declaration = next(d for d in declarations if d["name"] == allowed[0])
        schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
        return {"name": declaration["name"], "args": rules.sample_args(schema)}
    return None


def _parse(body: dict) -> dict:
    """The request with camelCase names at every level the fake reads, validated."""
    request = _camel_keys(body, "", _REQUEST_FIELDS)
    if not request.get("contents"):
        raise _Invalid("* GenerateContentRequest.contents: contents is not specified")
    request["generationConfig"] = _camel_keys(
        request.get("generationConfig"), "generation_config", _CONFIG_FIELDS
    )
    contents = []
    for i, content in enumerate(request["contents"]):
        content = _camel_keys(content, f"contents[{i}]", {"role", "parts"})
        if content.get("role", "user") not in ("user", "model"):
            raise _Invalid("Please use a valid role: user, model.")
        contents.append({"role": content.get("role", "user"), "parts": _parts(content, i)})
    request["contents"] = contents
    system = _camel_keys(request.get("systemInstruction"), "system_instruction", None)
    request["systemInstruction"] = {"parts": _parts(system, None)} if system else None
    tools = []
    for tool in request.get("tools") or []:
        tool = _camel_keys(tool, "tools", None)
        declarations = [_camel_keys(d, "", None) for d in tool.get("functionDeclarations") or []]
        tools.append({"functionDeclarations": declarations})
    request["tools"] = tools
    tool_config = _camel_keys(request.get("toolConfig"), "tool_config", None)
    calling = _camel_keys(tool_config.get("functionCallingConfig"), "", None)
    if calling.get("mode", "AUTO") not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise _Invalid(
            f"Invalid value at 'tool_config.function_calling_config.mode' "
            f"(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode)"
            f', "{calling["mode"]}"'
        )
    request["toolConfig"] = {"functionCallingConfig": calling}
    return request


def _parts(content: dict, index: int | None) -> list[dict]:
    where = "system_instruction" if index is None else f"contents[{index}]"
    if not content.get("parts"):
        raise _Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    parts = []
    for j, part in enumerate(content["parts"]):
        part = _camel_keys(part, f"{where}.parts[{j}]", _PART_FIELDS)
        if not part.keys() & {"text", "inlineData", "fileData", "functionCall", "functionResponse"}:
            raise _Invalid(
                f"* GenerateContentRequest.{where}.parts[{j}].data: required oneof field 'data' "
                "must have one initialized field"
            )
        for key in ("inlineData", "fileData", "functionCall", "functionResponse"):
            if key in part:
                part[key] = _camel_keys(part[key], "", None)
        data = part.get("inlineData", {}).get("data")
        if data is not None:
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise _Invalid(
                    f"Invalid value at '{where}.parts[{j}].inline_data.data' (TYPE_BYTES), "
                    f'Base64 decoding failed for "{str(data)[:20]}"'
                ) from None
        parts.append(part)
    return parts


def _prompt_tokens(request: dict) -> tuple[int, list[dict]]:
    text_tokens = images = 0
    system = request.get("systemInstruction") or {"parts": []}
    for part in [*system["parts"], *(p for c in request["contents"] for p in c["parts"])]:
        if "text" in part:
            text_tokens += rules.count_tokens(part["text"])
        elif "inlineData" in part or "fileData" in part:
            images += 1
        elif "functionCall" in part:
            text_tokens += rules.count_tokens(rules.compact(part["functionCall"].get("args")))
        elif "functionResponse" in part:
            text_tokens += rules.count_tokens(rules.compact(part["functionResponse"]))
    declarations = sum(len(t["functionDeclarations"]) for t in request.get("tools") or [])
    text_tokens += rules.TOOL_TOKENS * declarations
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if images:
        details.append({"modality": "IMAGE", "tokenCount": rules.IMAGE_TOKENS * images})
    return text_tokens + rules.IMAGE_TOKENS * images, details


def _embed(model: str, body: dict, where: str) -> dict:
    body = _camel_keys(
        body, where, {"model", "content", "taskType", "title"} | {"outputDimensionality"}
    )
    parts = _camel_keys(body.get("content"), "content", {"parts", "role"}).get("parts")
    if not parts:
        raise _Invalid(f"* EmbedContentRequest.{where or ''}content: content is not specified")
    text = " ".join(p.get("text", "") for p in parts)
    size = body.get("outputDimensionality") or (3072 if "gemini-embedding" in model else 768)
    return {"values": rules.embedding(text, int(size))}


def _batch_embed(model: str, body: dict) -> list[dict]:
    requests = _camel_keys(body, "", {"requests"}).get("requests") or []
    if not requests:
        raise _Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    for i, item in enumerate(requests):
        if item.get("model") != f"models/{model}":
            raise _Invalid(
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be "
                f"models/{model}, the model of the batch"
            )
    return [_embed(model, item, f"requests[{i}].") for i, item in enumerate(requests)]
