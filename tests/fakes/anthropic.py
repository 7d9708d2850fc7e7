"""A fake Anthropic API speaking the Messages API's wire format.

References: https://docs.anthropic.com/en/api/messages (request and response),
https://docs.anthropic.com/en/docs/build-with-claude/streaming (SSE events),
https://docs.anthropic.com/en/api/errors (error shapes and statuses),
https://docs.anthropic.com/en/docs/build-with-claude/token-counting (count_tokens).

What it checks, as the API does (anthropic_checks.py): the key, in `x-api-key` or as
`Authorization: Bearer` (401 authentication_error; the official SDK 2.x sends the bearer form),
the `anthropic-version` header, required `model`/`messages`/`max_tokens`, unknown top-level
fields ("Extra inputs are not permitted"), roles (a "system" message is refused: the system
prompt is a top-level field), temperature and top_p in [0, 1], image sources, every
`tool_result` answering a `tool_use` of the previous assistant message, thinking budgets.

Answers follow tests/fakes/rules.py. Blocks marked with `cache_control` make the prefix up to
the last marked block cacheable: the first request with that prefix reports it as
cache_creation_input_tokens, later ones as cache_read_input_tokens (input_tokens excludes
both, as the API does). With `thinking` enabled a thinking block comes first.
"""

import base64
import hashlib
import json

from . import rules
from .anthropic_checks import Invalid, as_blocks, validate
from .base import FakeProvider, Fault, ReceivedRequest, Reply, json_reply

API_KEY = "sk-ant-fake-key"
_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_SSE_TYPE = "text/event-stream; charset=utf-8"


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class FakeAnthropic(FakeProvider):
    def __init__(self, *, api_key: str = API_KEY, models=None, reply: str | None = None):
        super().__init__()
        self.api_key = api_key
        self.models = set(models) if models else None  # None: every model exists
        self.reply = reply  # when set, the text of every answer
        self._cached_prefixes: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self._cached_prefixes.clear()

    # --- protocol -------------------------------------------------------------------------------

    def route(self, method, path, query, body):
        model = body.get("model") if isinstance(body, dict) else None
        if method == "POST" and path == "/v1/messages":
            return "messages", model
        if method == "POST" and path == "/v1/messages/count_tokens":
            return "count_tokens", model
        if method == "GET" and path == "/v1/models":
            return "models", None
        return None

    def authenticate(self, request: ReceivedRequest) -> Reply | None:
        # The API takes the key as x-api-key or as a bearer token; the official SDK (2.x) sends
        # the latter.
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if key is None and bearer.lower().startswith("bearer "):
            key = bearer[len("bearer ") :]
        if key is None:
            return self.error_reply(401, message="x-api-key header is required")
        if key != self.api_key:
            return self.error_reply(401, message="invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return self.error_reply(400, message="anthropic-version: header is required")
        return None

    def error_reply(self, status: int, **fields) -> Reply:
        kind, message = _ERRORS.get(status, ("api_error", f"HTTP {status}"))
        request_id = self.next_id("req_fake_")
        error = {"type": fields.get("type", kind), "message": fields.get("message", message)}
        headers = {"request-id": request_id}
        if status == 429:
            headers["retry-after"] = "1"  # the API always says when to come back
        return json_reply(
            {"type": "error", "error": error, "request_id": request_id}, status, headers
        )

    def stream_error(self, fault: Fault) -> bytes:
        error = {"type": "overloaded_error", "message": "Overloaded", **(fault.error or {})}
        return sse("error", {"type": "error", "error": error})

    def handle(self, request: ReceivedRequest) -> Reply:
        if request.operation == "models":
            return json_reply(self._models())
        body = request.body
        counting = request.operation == "count_tokens"
        try:
            if not isinstance(body, dict):
                raise Invalid("Input should be a valid dictionary")
            validate(body, counting=counting)
        except Invalid as invalid:
            return self.error_reply(400, message=str(invalid))
        if self.models is not None and body["model"] not in self.models:
            return self.error_reply(404, message=f"model: {body['model']}")
        if counting:
            return json_reply({"input_tokens": self._input_usage(body, remember=False)[0]})
        message = self._message(body)
        headers = {"request-id": self.next_id("req_fake_")}
        if not body.get("stream"):
            return json_reply(message, headers=headers)
        return Reply(events=_events(message), content_type=_SSE_TYPE, headers=headers)

    def _models(self) -> dict:
        names = sorted(self.models or {"claude-fake"})
        data = [
            {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
            for n in names
        ]
        return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}

    # --- the answer -----------------------------------------------------------------------------

    def _message(self, body: dict) -> dict:
        messages = body["messages"]
        last = messages[-1]
        blocks = as_blocks(last.get("content"))
        results = [b for b in blocks if b.get("type") == "tool_result"]
        text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        content: list[dict] = []
        thinking = body.get("thinking") or {}
        if thinking.get("type") == "enabled":
            signature = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
            content.append(
                {"type": "thinking", "thinking": f"Thinking about: {text}", "signature": signature}
            )
        tool, forced = _tool_to_call(body, text, bool(results))
        stop_sequence = None
        if rules.UNSAFE_REPLY in text:
            stop_reason = "refusal"
        elif tool is not None:
            if not forced:  # left to choose, the model says what it is about to do
                content.append({"type": "text", "text": f"Let me use {tool['name']}."})
            args = rules.sample_args(tool.get("input_schema"))
            tool_use_id = self.next_id("toolu_fake_")
            content.append(
                {"type": "tool_use", "id": tool_use_id, "name": tool["name"], "input": args}
            )
            stop_reason = "tool_use"
        else:
            if self.reply is not None:
                answer = self.reply
            elif results:
                answer = rules.tool_result_reply(" ".join(_result_text(r) for r in results))
            else:
                answer = rules.reply_text(text)
            answer, reason, stop_sequence = rules.apply_limits(
                answer, body["max_tokens"], body.get("stop_sequences")
            )
            content.append({"type": "text", "text": answer})
            stop_reason = {"end": "end_turn"}.get(reason, reason)
        input_tokens, written, read = self._input_usage(body, remember=True)
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": sum(_output_tokens(b) for b in content),
            "service_tier": "standard",
        }
        return {
            "id": self.next_id("msg_fake_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    def _input_usage(self, body: dict, *, remember: bool) -> tuple[int, int, int]:
        """(input tokens, cache write, cache read); without cache_control, all input."""
        units = list(_units(body))
        total = sum(tokens for _, tokens, _ in units)
        marked = [i for i, (_, _, cached) in enumerate(units) if cached]
        if not marked:
            return total, 0, 0
        prefix = units[: marked[-1] + 1]
        key = hashlib.sha256("\n".join([body["model"], *(k for k, _, _ in prefix)]).encode())
        cached = sum(tokens for _, tokens, _ in prefix)
        if not remember:
            return total, 0, 0
        if key.hexdigest() in self._cached_prefixes:
            return total - cached, 0, cached
        self._cached_prefixes.add(key.hexdigest())
        return total - cached, cached, 0


def _result_text(result: dict) -> str:
    return " ".join(b.get("text", "") for b in as_blocks(result.get("content")) if "text" in b)


def _tool_to_call(body: dict, text: str, answering: bool) -> tuple[dict | None, bool]:
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return None, False
    if choice.get("type") == "tool":
        return next(t for t in tools if t["name"] == choice.get("name")), True
    if choice.get("type") == "any":
        return tools[0], True
    return (tools[0] if rules.wants_tool(text) and not answering else None), False


def _output_tokens(block: dict) -> int:
    if block["type"] == "tool_use":
        return rules.count_tokens(rules.compact(block["input"]))
    return rules.count_tokens(block.get("text") or block.get("thinking") or "")


def _units(body: dict):
    """(cache key, tokens, carries cache_control) for everything the prompt holds, in the
    API's cache order: tools, system, messages."""
    for tool in body.get("tools") or []:
        yield rules.compact(tool), rules.TOOL_TOKENS, "cache_control" in tool
    for block in as_blocks(body.get("system")):
        yield (
            block.get("text", ""),
            rules.count_tokens(block.get("text", "")),
            "cache_control" in block,
        )
    for message in body["messages"]:
        for block in as_blocks(message.get("content")):
            yield rules.compact(block), _block_tokens(block), "cache_control" in block


def _block_tokens(block: dict) -> int:
    kind = block.get("type")
    if kind == "image":
        return rules.IMAGE_TOKENS
    if kind == "tool_use":
        return rules.count_tokens(rules.compact(block.get("input")))
    if kind == "tool_result":
        parts = as_blocks(block.get("content"))
        images = sum(1 for p in parts if p.get("type") == "image")
        return rules.count_tokens(_result_text(block)) + rules.IMAGE_TOKENS * images
    return rules.count_tokens(block.get("text") or block.get("thinking") or "")


def _events(message: dict) -> list[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    events = [sse("message_start", {"type": "message_start", "message": start})]
    ping = sse("ping", {"type": "ping"})
    if not message["content"]:
        events.append(ping)
    for index, block in enumerate(message["content"]):
        empty, deltas = _split_block(block)
        events.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
        )
        if index == 0:  # the API pings once the first block has started
            events.append(ping)
        for delta in deltas:
            events.append(
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    end = {
        "type": "message_delta",
        "delta": delta,
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    return [*events, sse("message_delta", end), sse("message_stop", {"type": "message_stop"})]


def _split_block(block: dict) -> tuple[dict, list[dict]]:
    if block["type"] == "text":
        pieces = rules.split_text(block["text"])
        return {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces]
    if block["type"] == "thinking":
        pieces = rules.split_text(block["thinking"])
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {"type": "thinking", "thinking": "", "signature": ""}, deltas
    empty = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    pieces = ["", *rules.split_json(rules.compact(block["input"]))]  # the API opens with ""
    return empty, [{"type": "input_json_delta", "partial_json": p} for p in pieces]
