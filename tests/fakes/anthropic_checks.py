"""What the Messages API refuses, as the fake Anthropic API checks it (see anthropic.py).

Messages follow the API's "<field path>: <problem>" style, e.g. "max_tokens: Field required".
"""

import base64
import binascii

MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
_FIELDS |= {"context_management", "output_config", "output_format"}
_CREATE_FIELDS = _FIELDS | {"max_tokens", "metadata", "stop_sequences", "stream", "temperature"}
_CREATE_FIELDS |= {"top_p", "top_k", "service_tier", "container", "inference_geo"}


class Invalid(Exception):
    """A request the API answers with 400 invalid_request_error."""


def as_blocks(content) -> list[dict]:
    """Message content as blocks: a plain string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def validate(body: dict, *, counting: bool) -> None:
    allowed = _FIELDS if counting else _CREATE_FIELDS
    for name in body:
        if name not in allowed:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages") if counting else ("model", "max_tokens", "messages"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    if not counting and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not 0 <= value <= 1:
            raise Invalid(f"{name}: Input should be less than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    tool_names = {t.get("name") for t in body.get("tools") or []}
    for index, tool in enumerate(body.get("tools") or []):
        if "type" not in tool and "input_schema" not in tool:
            raise Invalid(f"tools.{index}.custom.input_schema: Field required")
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") not in tool_names:
        raise Invalid(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in tools")
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens") or 0
        if budget < 1024:
            raise Invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if not counting and body["max_tokens"] <= budget:
            raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "system":
            raise Invalid(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = as_blocks(message.get("content"))
        if not blocks and i != len(messages) - 1:
            raise Invalid(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        for j, block in enumerate(blocks):
            _validate_block(block, f"messages.{i}.content.{j}", previous_tool_uses)
        previous_tool_uses = {b.get("id") for b in blocks if b.get("type") == "tool_use"}


def _validate_block(block: dict, where: str, tool_uses: set[str]) -> None:
    kind = block.get("type")
    if kind == "image" or (kind == "tool_result" and isinstance(block.get("content"), list)):
        sources = [block] if kind == "image" else as_blocks(block["content"])
        for source in (b.get("source") or {} for b in sources if b.get("type") == "image"):
            _validate_image(source, f"{where}.image.source")
    if kind == "tool_result" and block.get("tool_use_id") not in tool_uses:
        raise Invalid(
            f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
            f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
            "`tool_use` block in the previous message."
        )


def _validate_image(source: dict, where: str) -> None:
    if source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise Invalid(f"{where}.url.url: Input should be a valid URL")
        return
    if source.get("type") != "base64":
        raise Invalid(f"{where}: Input tag '{source.get('type')}' does not match")
    if source.get("media_type") not in MEDIA_TYPES:
        raise Invalid(
            f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    try:
        base64.b64decode(source.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{where}.base64.data: invalid base64 data") from None
