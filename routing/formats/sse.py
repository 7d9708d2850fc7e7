"""Reading one server-sent event (as gateway/proxy/sse.py splits them) into its name and data."""

import orjson

from .errors import Malformed


def read_event(event: bytes | bytearray) -> tuple[str | None, bytes | None]:
    """The `event:` name and the `data:` payload of one complete event; (None, None) for one with
    neither (a comment or keep-alive). Several data lines join with a newline, per the SSE spec."""
    name = None
    data: list[bytes] = []
    for line in bytes(event).splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, (b"\n".join(data) if data else None)


def load_json(data: bytes) -> dict:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Malformed("not a JSON object")
    return parsed
