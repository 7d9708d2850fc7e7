"""What every provider fake shares: a real HTTP server on 127.0.0.1, recording, faults.

A fake is a raw ASGI app served by uvicorn in a daemon thread (the same `ServerThread` as the
OpenAI fake in tests/fake_upstream.py), so adapters talk to it over real sockets. Subclasses
speak one provider's wire format; they implement `route`, `authenticate`, `handle`,
`error_reply` and `stream_error`.

Tests program a fake the way they program the OpenAI one:
- `fail(status, **fields)` answers with the provider's own error body (and headers, e.g. a
  retry-after), `fail_mid_stream(after_chunks)` sends the provider's in-stream error event;
- `stall(after_chunks)` sends part of the answer and then nothing, `drop_stream(after_chunks)`
  closes the connection half way, `hang()` never answers, `respond_raw(body)` answers exactly
  `body`;
- `delay_s` waits before the response headers, `chunk_delay_s` between stream events (a slow
  drip), `write_size` re-cuts a stream into writes of that many bytes, so a client's parser
  meets events split across reads;
- each fault can be limited to the next `times` requests and to one `model`.
`received()` lists what arrived: method, path, headers, parsed body.
"""

import itertools
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from tests.fake_upstream import ServerThread, sleep_or_disconnect, until_disconnect


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # decoded
    raw_path: str  # as sent on the wire, percent-encoding kept (SigV4 signs this one)
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: object  # parsed JSON, or None when the body was empty or not JSON
    raw_body: bytes
    operation: str | None = None  # the provider operation it was routed to, e.g. "converse"
    model: str | None = None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    events: list[bytes] | None = None  # a stream: each item is one event, already framed
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What to do instead of answering normally. `times=None` means every matching request."""

    status: int | None = None
    error: dict | None = None
    headers: dict[str, str | None] | None = None
    hang: bool = False
    drop_after: int | None = None
    stall_after: int | None = None
    error_after: int | None = None
    raw_body: bytes | None = None
    content_type: str = "application/json"
    times: int | None = None
    model: str | None = None


class _DropConnection(Exception):
    """Raised after the response started: uvicorn then closes the socket mid-body."""


def json_reply(body: object, status: int = 200, headers: dict | None = None) -> Reply:
    return Reply(status=status, body=json.dumps(body).encode(), headers=dict(headers or {}))


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        self.write_size: int | None = None
        self.disconnects = 0  # requests whose client went away before the answer was complete
        self._faults: list[Fault] = []
        self._lock = threading.Lock()  # faults are set by the test thread, used by the server's
        self._server: ServerThread | None = None
        self._ids = itertools.count(1)

    # --- to implement ---------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict, body) -> tuple[str, str | None] | None:
        """(operation, model) for a known endpoint, None for an unknown one."""
        raise NotImplementedError

    def authenticate(self, request: ReceivedRequest) -> Reply | None:
        """The provider's refusal for a missing or wrong credential, or None to go on."""
        raise NotImplementedError

    def handle(self, request: ReceivedRequest) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, **fields) -> Reply:
        """The provider's error answer for `status`; `fields` override its message/type."""
        raise NotImplementedError

    def stream_error(self, fault: Fault) -> bytes:
        """The provider's in-stream error event, framed."""
        raise NotImplementedError

    # --- test controls --------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
        self.requests.clear()
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        self.write_size = None
        self.disconnects = 0
        self._ids = itertools.count(1)

    def fail(self, status: int, *, times=None, model=None, headers=None, **error) -> None:
        """Answer `status` with the provider's error body. `error` overrides its fields (e.g.
        message, or the provider's error type); `headers` are added (a None value removes a
        default one, e.g. {"retry-after": None})."""
        self._add(Fault(status=status, error=error, headers=headers, times=times, model=model))

    def fail_mid_stream(self, after_chunks: int = 1, *, times=None, model=None, **error) -> None:
        """Start the stream, send `after_chunks` events, then the provider's error event."""
        self._add(Fault(error_after=after_chunks, error=error, times=times, model=model))

    def stall(self, after_chunks: int = 0, *, times=None, model=None) -> None:
        """Send the headers and `after_chunks` stream events (half of a body that is not
        streamed), then nothing until the client gives up."""
        self._add(Fault(stall_after=after_chunks, times=times, model=model))

    def drop_stream(self, after_chunks: int = 1, *, times=None, model=None) -> None:
        """Send `after_chunks` stream events (half of a body), then close the connection."""
        self._add(Fault(drop_after=after_chunks, times=times, model=model))

    def hang(self, *, times=None, model=None) -> None:
        self._add(Fault(hang=True, times=times, model=model))

    def respond_raw(self, body: bytes, *, status=200, content_type="application/json", **match):
        self._add(Fault(status=status, raw_body=body, content_type=content_type, **match))

    def received(self, path: str | None = None, *, operation: str | None = None):
        return [
            r
            for r in self.requests
            if (path is None or r.path == path) and (operation is None or r.operation == operation)
        ]

    @property
    def last(self) -> ReceivedRequest:
        return self.requests[-1]

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, model: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.model is not None and fault.model != model:
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault
        return None

    # --- serving --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return self._server.url

    def start(self):
        self._server = ServerThread(self)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        found = self.route(method, path, query, body)
        operation, model = found if found else (None, None)
        raw_path = scope.get("raw_path") or path.encode()
        request = ReceivedRequest(
            method, path, raw_path.decode("latin-1"), query, headers, body, raw, operation, model
        )
        self.requests.append(request)

        refusal = self.authenticate(request)
        if refusal is not None:
            await self._send(refusal, None, receive, send)
            return
        if found is None:
            await self._send(self.error_reply(404), None, receive, send)
            return
        if not parsed:
            await self._send(self.error_reply(400), None, receive, send)
            return
        fault = self._take_fault(model) if self._faults else None
        if self.delay_s and await sleep_or_disconnect(receive, self.delay_s):
            self.disconnects += 1
            return
        if fault is not None and fault.hang:
            await until_disconnect(receive)
            self.disconnects += 1
            return
        if fault is not None and fault.raw_body is not None:
            reply = Reply(fault.status or 200, fault.raw_body, content_type=fault.content_type)
            await self._send(reply, None, receive, send)
            return
        if fault is not None and fault.status is not None:
            reply = self.error_reply(fault.status, **(fault.error or {}))
            for name, value in (fault.headers or {}).items():
                reply.headers.pop(name.lower(), None)
                if value is not None:
                    reply.headers[name.lower()] = value
            await self._send(reply, None, receive, send)
            return
        await self._send(self.handle(request), fault, receive, send)

    async def _send(self, reply: Reply, fault: Fault | None, receive, send) -> None:
        headers = [(b"content-type", reply.content_type.encode())]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.events is None:
            await self._send_body(reply.status, headers, reply.body, fault, receive, send)
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        for index, event in enumerate(reply.events):
            if fault is not None and index == fault.drop_after:
                raise _DropConnection("fault injection: connection closed mid-stream")
            if fault is not None and index == fault.stall_after:
                await until_disconnect(receive)
                self.disconnects += 1
                return
            if fault is not None and index == fault.error_after:
                await self._write(send, self.stream_error(fault))
                break
            pause = self.chunk_delay_s if index else 0.0
            if pause and await sleep_or_disconnect(receive, pause):
                self.disconnects += 1
                return
            await self._write(send, event)
        await send({"type": "http.response.body", "body": b""})

    async def _send_body(self, status, headers, body, fault, receive, send) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        cut = fault is not None and (fault.stall_after is not None or fault.drop_after is not None)
        if not cut:
            await send({"type": "http.response.body", "body": body})
            return
        half = body[: len(body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        if fault.drop_after is not None:
            raise _DropConnection("fault injection: connection closed mid-body")
        await until_disconnect(receive)
        self.disconnects += 1

    async def _write(self, send, data: bytes) -> None:
        size = self.write_size or len(data) or 1
        for offset in range(0, len(data), size):
            piece = data[offset : offset + size]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
