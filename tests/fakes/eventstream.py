"""AWS event-stream framing (application/vnd.amazon.eventstream), the encoding side.

Bedrock's ConverseStream answers with this binary framing instead of SSE. Each message is:
a 12-byte prelude (total length, headers length, both big-endian uint32, then the CRC32 of
those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header is a
1-byte name length, the name, a 1-byte value type (7 = string), a 2-byte value length and the
value. Bedrock sends events with the headers :event-type, :content-type and :message-type
"event", and errors inside a stream with :message-type "exception" and :exception-type.

Tests check this encoder against botocore's own parser (botocore.eventstream), so the framing
is right by construction. Reference:
https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html (the same framing).
"""

import binascii
import json
import struct

_STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(event_type: str, payload: dict) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, json.dumps(payload, separators=(",", ":")).encode())


def exception(exception_type: str, payload: dict) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps(payload, separators=(",", ":")).encode())
