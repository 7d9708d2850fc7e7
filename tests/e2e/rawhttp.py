"""HTTP/1.1 over a bare socket, for what well-behaved clients never do: stall half-way through a
body, send a chunked body without its end, put latin-1 bytes in a header."""

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# Every read is bounded: a server that never answers fails the test instead of hanging it.
READ_TIMEOUT_S = 10.0


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last value wins
    body: bytes


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT_S)
    sock.settimeout(READ_TIMEOUT_S)
    return sock


def request_head(method: str, path: str, headers: dict[str, str | bytes] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"host: gateway"]
    for name, value in (headers or {}).items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode("latin-1") + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a `transfer-encoding: chunked` body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def read_response(sock: socket.socket) -> RawResponse:
    """One response, framed by its content-length."""
    data = b""
    while b"\r\n\r\n" not in data:
        received = sock.recv(65536)
        if not received:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += received
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        received = sock.recv(65536)
        if not received:
            break
        rest += received
    return RawResponse(
        status=int(status_line.split()[1]),
        headers=headers,
        body=rest[:length],
    )


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (waits up to READ_TIMEOUT_S for it)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
