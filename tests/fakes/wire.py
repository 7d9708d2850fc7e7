"""Reading what a fake (or the gateway) sent back: SSE, AWS event-stream, and shapes.

`shape_mismatches(expected, actual)` says where `actual` lacks the shape of `expected`: every
key of an expected object present with a value of the same JSON type, recursively; every item
of an expected list matched by some item of the actual one; null stays null. Values are not
compared: golden examples and the fakes' deterministic answers say different things in the
same shape.
"""

import json

from botocore.eventstream import EventStreamBuffer


def parse_sse(raw: bytes) -> list[tuple[str | None, dict]]:
    """(event name, parsed data) per event; blank lines end events whether LF or CRLF."""
    events = []
    text = raw.decode().replace("\r\n", "\n")
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def parse_eventstream(raw: bytes) -> list[tuple[dict, dict]]:
    """(headers, parsed JSON payload) per message, decoded by botocore's own parser, which
    checks both CRC32 checksums."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(dict(m.headers), json.loads(m.payload or b"{}")) for m in buffer]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def shape_mismatches(expected: object, actual: object, path: str = "$") -> list[str]:
    if _kind(expected) != _kind(actual):
        return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
    if isinstance(expected, dict):
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_mismatches(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        problems = []
        for index, item in enumerate(expected):
            found = [shape_mismatches(item, candidate, f"{path}[{index}]") for candidate in actual]
            if not any(not f for f in found):
                problems += found[0] if found else [f"{path}[{index}]: the list is empty"]
        return problems
    return []


def anthropic_event_kind(name: str | None, data: dict) -> str:
    detail = (data.get("delta") or {}).get("type") or (data.get("content_block") or {}).get("type")
    return f"{name}/{detail}" if detail and name != "message_delta" else str(name)


def gemini_event_kind(data: dict) -> str:
    if "promptFeedback" in data and not data.get("candidates"):
        return "blocked"
    candidate = (data.get("candidates") or [{}])[0]
    return "final" if candidate.get("finishReason") else "chunk"


def bedrock_event_kind(headers: dict, payload: dict) -> str:
    kind = headers.get(":event-type") or headers.get(":exception-type", "")
    detail = next(iter(payload.get("delta") or payload.get("start") or {}), None)
    return f"{kind}/{detail}" if detail else kind


def collapse(kinds: list[str]) -> list[str]:
    """The order of kinds with repeats in a row merged: how many deltas is not the shape."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
