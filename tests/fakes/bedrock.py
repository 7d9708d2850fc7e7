"""A fake Amazon Bedrock Runtime speaking Converse, ConverseStream and InvokeModel (embeddings).

References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
API_runtime_ConverseStream.html, API_runtime_ConverseStreamOutput.html (events and in-stream
exceptions), API_runtime_InvokeModel.html, and the service model botocore ships
(botocore/data/bedrock-runtime), which the tests parse the fake's answers with.

Endpoints: POST /model/{modelId}/converse (JSON), /converse-stream (AWS event-stream framing:
messageStart, contentBlockStart (tool use only: text blocks start with their first delta, as on
Bedrock), contentBlockDelta, contentBlockStop, messageStop, metadata; every payload carries the
"p" padding field Bedrock adds) and /invoke (Titan and Cohere embedding models, see
bedrock_embed.py).

What it checks: SigV4 for real (sigv4.py), then what Converse validates: messages present,
roles user/assistant starting with user and alternating, non-empty content, image formats and
base64 bytes, toolConfig present when toolUse/toolResult blocks are, every toolResult answering
a toolUse of the previous turn, inferenceConfig ranges. Errors are {"message": ...} with the
exception name in the x-amzn-ErrorType header, as botocore reads them.

Answers follow tests/fakes/rules.py; cachePoint blocks make the prefix before the last one
cacheable (cacheWriteInputTokens the first time, cacheReadInputTokens after).
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from . import bedrock_embed, eventstream, rules, sigv4
from .base import FakeProvider, Fault, ReceivedRequest, Reply, json_reply
from .bedrock_embed import Invalid

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake/bedrock/secret/key/0123456789abcdefgh"
_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream|invoke)$")
_EVENTSTREAM = "application/vnd.amazon.eventstream"
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ERRORS = {
    400: ("ValidationException", "Malformed input request, please reformat your input."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The system encountered an unexpected error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


class FakeBedrock(FakeProvider):
    def __init__(
        self,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        session_token: str | None = None,
        region: str = "us-east-1",
        models=None,
        reply: str | None = None,
    ):
        super().__init__()
        self.credentials = sigv4.AwsCredentials(access_key, secret_key, session_token)
        self.region = region
        self.models = set(models) if models else None  # None: every model id exists
        self.reply = reply
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._cached_prefixes: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self._cached_prefixes.clear()
        self.clock = lambda: datetime.now(UTC)

    def signed_headers(self, path: str, body: bytes, **headers: str) -> dict[str, str]:
        """Signed headers for a POST of `body` to `path` on this fake (for plain httpx)."""
        url = f"{self.url}{path}"
        return sigv4.signed_headers(
            "POST", url, body, self.credentials, region=self.region, headers=headers
        )

    # --- protocol -------------------------------------------------------------------------------

    def route(self, method, path, query, body):
        found = _PATH.match(path)
        if method == "POST" and found:
            return found["op"], found["model"]
        return None

    def authenticate(self, request: ReceivedRequest) -> Reply | None:
        failure = sigv4.verify(request, self.credentials, region=self.region, now=self.clock())
        if failure is None:
            return None
        reply = self.error_reply(failure.status, type=failure.error_type, message=failure.message)
        coral = "http://internal.amazon.com/coral/com.amazon.coral.service/"
        reply.headers["x-amzn-errortype"] = f"{failure.error_type}:{coral}"
        return reply

    def error_reply(self, status: int, **fields) -> Reply:
        kind, message = _ERRORS.get(status, ("InternalServerException", f"HTTP {status}"))
        kind = fields.get("type", kind)
        headers = {
            "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-requestid": self.next_id("fake-request-"),
        }
        return json_reply({"message": fields.get("message", message)}, status, headers)

    def stream_error(self, fault: Fault) -> bytes:
        error = dict(fault.error or {})
        kind = error.pop("type", "modelStreamErrorException")
        payload = {"message": "The model stream was interrupted.", **error}
        return eventstream.exception(kind, payload)

    def handle(self, request: ReceivedRequest) -> Reply:
        model = request.model or ""
        try:
            if self.models is not None and model not in self.models:
                raise Invalid("The provided model identifier is invalid.")
            if request.operation == "invoke":
                return bedrock_embed.invoke(model, request.body, self.next_id("fake-request-"))
            if "embed" in model:
                raise Invalid(
                    "This action doesn't support the model that you provided. Try again with a "
                    "supported text or chat model."
                )
            body = request.body if isinstance(request.body, dict) else {}
            _validate(body)
        except Invalid as invalid:
            return self.error_reply(400, message=str(invalid))
        response = self._converse(body)
        headers = {"x-amzn-requestid": self.next_id("fake-request-")}
        if request.operation == "converse":
            return json_reply(response, headers=headers)
        return Reply(events=_events(response), content_type=_EVENTSTREAM, headers=headers)

    # --- the answer -----------------------------------------------------------------------------

    def _converse(self, body: dict) -> dict:
        last = body["messages"][-1]["content"]
        text = " ".join(b["text"] for b in last if "text" in b)
        results = [b["toolResult"] for b in last if "toolResult" in b]
        config = body.get("inferenceConfig") or {}
        tool, forced = _tool_to_call(body, text, bool(results))
        content: list[dict] = []
        if rules.UNSAFE_REPLY in text:
            stop_reason = "content_filtered"
        elif tool is not None:
            if not forced:
                content.append({"text": f"Let me use {tool['name']}."})
            args = rules.sample_args((tool.get("inputSchema") or {}).get("json"))
            tool_use_id = self.next_id("tooluse_fake_")
            content.append(
                {"toolUse": {"toolUseId": tool_use_id, "name": tool["name"], "input": args}}
            )
            stop_reason = "tool_use"
        else:
            if self.reply is not None:
                answer = self.reply
            elif results:
                answer = rules.tool_result_reply(" ".join(_result_text(r) for r in results))
            else:
                answer = rules.reply_text(text)
            answer, reason, _ = rules.apply_limits(
                answer, config.get("maxTokens"), config.get("stopSequences")
            )
            content.append({"text": answer})
            stop_reason = {"end": "end_turn"}.get(reason, reason)
        output = sum(
            rules.count_tokens(b["text"])
            if "text" in b
            else rules.count_tokens(rules.compact(b["toolUse"]["input"]))
            for b in content
        )
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason,
            "usage": self._usage(body, output),
            "metrics": {"latencyMs": 100},
        }

    def _usage(self, body: dict, output: int) -> dict:
        units = list(_units(body))
        total = sum(tokens for _, tokens in units if tokens is not None)
        points = [i for i, (_, tokens) in enumerate(units) if tokens is None]
        usage = {"inputTokens": total, "outputTokens": output, "totalTokens": total + output}
        if not points:
            return usage
        prefix = units[: points[-1]]
        key = hashlib.sha256("\n".join(k for k, _ in prefix).encode()).hexdigest()
        cached = sum(tokens for _, tokens in prefix if tokens is not None)
        read = cached if key in self._cached_prefixes else 0
        self._cached_prefixes.add(key)
        usage.update(
            inputTokens=total - cached,
            cacheReadInputTokens=read,
            cacheWriteInputTokens=cached - read,
        )
        return usage


def _result_text(result: dict) -> str:
    parts = [b["text"] if "text" in b else rules.compact(b.get("json")) for b in result["content"]]
    return " ".join(parts)


def _tool_to_call(body: dict, text: str, answering: bool) -> tuple[dict | None, bool]:
    config = body.get("toolConfig") or {}
    tools = [t["toolSpec"] for t in config.get("tools") or [] if "toolSpec" in t]
    choice = config.get("toolChoice") or {"auto": {}}
    if not tools:
        return None, False
    if "tool" in choice:
        return next(t for t in tools if t["name"] == choice["tool"].get("name")), True
    if "any" in choice:
        return tools[0], True
    return (tools[0] if rules.wants_tool(text) and not answering else None), False


def _units(body: dict):
    """(cache key, tokens) in prompt order: tools, system, messages; a cachePoint is
    (key, None)."""
    for tool in (body.get("toolConfig") or {}).get("tools") or []:
        yield rules.compact(tool), None if "cachePoint" in tool else rules.TOOL_TOKENS
    for block in body.get("system") or []:
        yield rules.compact(block), None if "cachePoint" in block else _block_tokens(block)
    for message in body["messages"]:
        for block in message["content"]:
            yield rules.compact(block), None if "cachePoint" in block else _block_tokens(block)


def _block_tokens(block: dict) -> int:
    if "text" in block:
        return rules.count_tokens(block["text"])
    if "image" in block:
        return rules.IMAGE_TOKENS
    if "toolUse" in block:
        return rules.count_tokens(rules.compact(block["toolUse"].get("input")))
    if "toolResult" in block:
        return rules.count_tokens(_result_text(block["toolResult"]))
    return 0


def _validate(body: dict) -> None:
    messages = body.get("messages")
    if not messages:
        raise Invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null"
        )
    config = body.get("inferenceConfig") or {}
    for name, top in (("temperature", 1), ("topP", 1)):
        value = config.get(name)
        if value is not None and not 0 <= value <= top:
            raise Invalid(
                f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' "
                f"failed to satisfy constraint: Member must have value less than or equal to {top}"
            )
    if config.get("maxTokens") is not None and config["maxTokens"] < 1:
        raise Invalid(
            "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to "
            "satisfy constraint: Member must have value greater than or equal to 1"
        )
    tool_config = body.get("toolConfig")
    if tool_config is not None and not tool_config.get("tools"):
        raise Invalid(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(
                f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[user, assistant]"
            )
        expected = "user" if i % 2 == 0 else "assistant"
        if i == 0 and role != "user":
            raise Invalid(
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message."
            )
        if role != expected:
            raise Invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        content = message.get("content") or []
        if not content:
            raise Invalid(
                f"The content field in the Message object at messages.{i} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        for j, block in enumerate(content):
            _validate_block(block, f"messages.{i}.content.{j}", tool_config is not None)
        results = {b["toolResult"].get("toolUseId") for b in content if "toolResult" in b}
        if previous_tool_uses - results:
            raise Invalid(
                f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
                f"{', '.join(sorted(previous_tool_uses - results))}"
            )
        if results - previous_tool_uses:
            raise Invalid(
                f"The toolResult blocks at messages.{i}.content contain ids that answer no "
                f"toolUse of the previous turn: {', '.join(sorted(results - previous_tool_uses))}"
            )
        previous_tool_uses = {b["toolUse"]["toolUseId"] for b in content if "toolUse" in b}


def _validate_block(block: dict, where: str, has_tool_config: bool) -> None:
    if len(block) != 1:
        raise Invalid(f"ContentBlock at {where} must set exactly one member.")
    if ("toolUse" in block or "toolResult" in block) and not has_tool_config:
        raise Invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    image = block.get("image")
    if image is None:
        return
    if image.get("format") not in _IMAGE_FORMATS:
        raise Invalid(
            f"1 validation error detected: Value '{image.get('format')}' at '{where}.image."
            "format' failed to satisfy constraint: Member must satisfy enum value set: "
            "[png, jpeg, gif, webp]"
        )
    source = image.get("source") or {}
    if "s3Location" in source:
        return
    try:
        base64.b64decode(source.get("bytes", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"Invalid base64 in {where}.image.source.bytes") from None


def _padded(payload: dict) -> dict:
    size = 1 + len(json.dumps(payload)) % len(_PADDING)
    return {**payload, "p": _PADDING[:size]}


def _events(response: dict) -> list[bytes]:
    events = [eventstream.event("messageStart", _padded({"role": "assistant"}))]
    for index, block in enumerate(response["output"]["message"]["content"]):
        if "toolUse" in block:
            start = {"toolUse": {k: block["toolUse"][k] for k in ("toolUseId", "name")}}
            events.append(
                eventstream.event(
                    "contentBlockStart", _padded({"contentBlockIndex": index, "start": start})
                )
            )
            deltas = [
                {"toolUse": {"input": p}}
                for p in rules.split_json(rules.compact(block["toolUse"]["input"]))
            ]
        else:
            deltas = [{"text": p} for p in rules.split_text(block["text"])]
        for delta in deltas:
            events.append(
                eventstream.event(
                    "contentBlockDelta", _padded({"contentBlockIndex": index, "delta": delta})
                )
            )
        events.append(eventstream.event("contentBlockStop", _padded({"contentBlockIndex": index})))
    events.append(eventstream.event("messageStop", _padded({"stopReason": response["stopReason"]})))
    metadata = {"usage": response["usage"], "metrics": response["metrics"]}
    events.append(eventstream.event("metadata", _padded(metadata)))
    return events
