"""The fakes' deterministic behaviour, one place for all three providers.

Tests (and the gateway's round-trip tests) compute expected answers from these functions
instead of copying numbers, so a rule changes in one place.

- Reply: `reply_text(last user text)` is "Echo: <text>"; after a tool result it is
  "Tool result: <result>".
- Tool call: when the request offers tools and the last user text contains "weather"
  (any case), or the request's tool choice forces a tool, the model calls the forced tool
  (else the first one) with `sample_args(its JSON schema)`.
- Tokens: `count_tokens(text)` is the number of whitespace-separated words. Input tokens are
  the words of every text the request carries (system, messages, tool results and tool-call
  inputs as compact JSON) plus IMAGE_TOKENS per image and TOOL_TOKENS per tool definition.
  Output tokens are the words of the generated text, thinking text and tool-call arguments
  (compact JSON).
- Limits: the reply is cut at the first stop sequence it contains ("stop_sequence"), or to
  max_tokens words ("max_tokens").
- Markers: a last user text containing UNSAFE_PROMPT is refused as a prompt (Gemini's
  promptFeedback.blockReason); one containing UNSAFE_REPLY ends with the provider's
  content-filter stop reason and no text.
"""

import hashlib
import json
import math
import struct

IMAGE_TOKENS = 100
TOOL_TOKENS = 10
TOOL_TRIGGER = "weather"
UNSAFE_PROMPT = "UNSAFE_PROMPT"
UNSAFE_REPLY = "UNSAFE_REPLY"


def count_tokens(text: str) -> int:
    return len(text.split())


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def reply_text(last_user_text: str) -> str:
    return f"Echo: {last_user_text}" if last_user_text.strip() else "Echo: (no text)"


def tool_result_reply(result_text: str) -> str:
    return f"Tool result: {result_text}"


def wants_tool(last_user_text: str) -> bool:
    return TOOL_TRIGGER in last_user_text.lower()


def sample_args(schema: dict | None) -> dict:
    """Arguments that satisfy a simple JSON schema: its required properties (or all of them
    when none is required), strings "Paris" for location-like names and "test" otherwise."""
    schema = schema or {}
    properties = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    return {name: _sample_value(name, properties.get(name) or {}) for name in names}


def _sample_value(name: str, schema: dict) -> object:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else str(kind).lower()
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample_value(name, schema.get("items") or {})]
    if kind == "object":
        return sample_args(schema)
    return "Paris" if name.lower() in ("location", "city", "place") else "test"


def apply_limits(
    text: str, max_tokens: int | None, stop_sequences: list[str] | None
) -> tuple[str, str, str | None]:
    """Cut `text` like a model would: returns (text, "end" | "stop_sequence" | "max_tokens",
    the stop sequence that matched)."""
    for stop in stop_sequences or []:
        if stop and stop in text:
            return text[: text.index(stop)], "stop_sequence", stop
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return " ".join(text.split()[:max_tokens]), "max_tokens", None
    return text, "end", None


def split_text(text: str) -> list[str]:
    """Text deltas: one per word, the space kept with the word before it."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


def split_json(arguments: str, pieces: int = 3) -> list[str]:
    """A JSON string in `pieces` slices, the way providers stream tool-call arguments."""
    step = max(1, math.ceil(len(arguments) / pieces))
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def embedding(text: str, dimensions: int, normalize: bool = True) -> list[float]:
    """A deterministic vector: the same text always gives the same embedding."""
    seed = hashlib.sha256(text.encode()).digest()
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        values += [(v / 2**31) - 1.0 for v in struct.unpack(">8I", block)]
        counter += 1
    values = values[:dimensions]
    if normalize:
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        values = [v / norm for v in values]
    return [round(v, 6) for v in values]
