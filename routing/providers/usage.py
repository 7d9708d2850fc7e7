"""Token usage from OpenAI-shaped bodies, and a rough estimate when an upstream reports none."""

from routing.formats.ir import Usage as IRUsage

from .base import Usage

# Roughly four characters per token for English text with OpenAI/Llama tokenizers. Only used
# when the upstream reports nothing, and then the usage row is flagged `usage_estimated`.
_CHARS_PER_TOKEN = 4


def usage_from_openai(data: dict | None) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        details = data.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    except (TypeError, ValueError):
        return None
    return Usage(input_tokens=prompt, output_tokens=completion, cached_tokens=cached)


def _text_len(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_len(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_len(v) for k, v in value.items() if k in ("content", "text", "input"))
    return 0


def estimate_tokens(value) -> int:
    return max(1, _text_len(value) // _CHARS_PER_TOKEN) if value else 0


def estimate_usage(payload: dict, output_chars: int) -> Usage:
    source = payload.get("messages") if "messages" in payload else payload.get("input")
    return Usage(
        input_tokens=estimate_tokens(source),
        output_tokens=max(0, output_chars // _CHARS_PER_TOKEN),
        estimated=True,
    )


def usage_from_ir(usage: IRUsage) -> Usage:
    """The translation layer's usage (routing.formats) as the gateway records it: every prompt
    token in input_tokens, cache reads as cached_tokens. TypeError when a count is not an
    integer (an upstream's malformed report, which cannot be costed: callers estimate)."""
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens)
    if any(type(count) is not int for count in counts):
        raise TypeError(f"token counts must be integers, not {counts!r}")
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_tokens,
    )
