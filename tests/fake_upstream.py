"""A fake OpenAI upstream: a real HTTP server speaking OpenAI's wire format.

End-to-end tests point an `openai_compatible` provider at it and assert on what it received,
or an `azure_openai` provider at its Azure OpenAI paths (`/openai/deployments/{deployment}/...`
with the `api-key` header and the `api-version` query parameter, refused as Azure does);
the benchmark runs it as the fast upstream (`python -m tests.fake_upstream --port PORT`). It is
a raw ASGI app under uvicorn, so the gateway talks to it over real sockets exactly as it talks
to a vendor. Response bodies are built once per model and reused, keeping the fake's own cost
out of benchmark numbers.

Offered tools, it calls one (`_tool_to_call`), streamed or not, until given the tool's result.

Behaviour is set per test: `delay_s` (before response headers), `chunk_delay_s` (between
stream events) and faults (`fail`, `hang`, `drop_stream`, `stall`, `respond_raw`), each
optionally for the next N matching requests only.
"""

import argparse
import asyncio
import base64
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn

PROMPT_TOKENS = 12
COMPLETION_TOKENS = 5
EMBEDDING_TOKENS_PER_INPUT = 4
EMBEDDING_DIMS = 8
REPLY = "Hello from the fake upstream."
MODELS = ("fake-chat", "fake-embed")
# Offered tools and not yet given a tool's result, the fake calls one, as a model would.
TOOL_CALL_ID = "call_fake_0"
TOOL_ARGUMENTS = '{"city": "Paris"}'
# OpenAI's token breakdowns; the fake has nothing to break down.
_COMPLETION_DETAILS = {
    f"{k}_tokens": 0 for k in ("reasoning", "audio", "accepted_prediction", "rejected_prediction")
}
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
# Quiet, and no lifespan: the apps served here have no startup or shutdown work.
_UVICORN = {"lifespan": "off", "access_log": False, "log_level": "warning"}

# The Azure OpenAI API version the fake serves unless told otherwise (the current GA one).
AZURE_API_VERSION = "2024-10-21"
_AZURE_PREFIX = "/openai/deployments/"
# Azure's own error bodies: a wrong key, and an api-version it does not serve (or none).
_AZURE_401 = {
    "code": "401",
    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
    "to provide a valid key for an active subscription and use a correct regional API endpoint "
    "for your resource.",
}
_AZURE_404 = {"code": "404", "message": "Resource not found"}

# OpenAI's error `type` and `code` for the statuses tests inject.
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: object  # parsed JSON, or None when the body was empty or not JSON
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What to do instead of answering normally. `times=None` means every matching request."""

    status: int | None = None
    error: dict | None = None
    hang: bool = False
    drop_after_chunks: int | None = None
    times: int | None = None
    model: str | None = None  # only requests for this model, when set
    headers: dict[str, str] | None = None  # extra response headers (with `status`)
    echo_header: str | None = None  # put this request header's value in the error message
    stall_after_chunks: int | None = None
    raw_body: bytes | None = None
    content_type: str = "application/json"
    chunked: bool = False


class _DropConnection(Exception):
    """Raised after the response started: uvicorn then closes the socket mid-body."""


def _error_body(status: int, **overrides) -> bytes:
    kind, code, message = _ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    error = {"message": message, "type": kind, "param": None, "code": code}
    error.update({k: v for k, v in overrides.items() if v is not None})
    return json.dumps({"error": error}).encode()


def _tool_to_call(body: dict) -> str | None:
    """The tool the fake calls: the one `tool_choice` forces, else the first offered. None when
    no tool is offered, `tool_choice` is "none", or the last message is a tool's result."""
    tools = body.get("tools")
    if not tools or not isinstance(tools, list):
        return None
    choice = body.get("tool_choice")
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if choice == "none" or (isinstance(last, dict) and last.get("role") == "tool"):
        return None
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name", ""))
    return str(tools[0].get("function", {}).get("name", ""))


def _sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class FakeUpstream:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        reply: str = REPLY,
        prompt_tokens: int = PROMPT_TOKENS,
        completion_tokens: int = COMPLETION_TOKENS,
        record: bool = True,
        azure_api_version: str = AZURE_API_VERSION,
    ) -> None:
        # When set, requests without this bearer credential get OpenAI's 401, like the real API
        # (on Azure paths: without it in the api-key header, Azure's 401).
        self.api_key = api_key
        self.azure_api_version = azure_api_version
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        # What reset() goes back to: a test that changes the reply or usage changes it for
        # itself only.
        self._initial_answer = (reply, prompt_tokens, completion_tokens)
        self.record = record
        self.requests: list[ReceivedRequest] = []
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        # Requests whose client went away before the response was complete.
        self.disconnects = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()  # faults are set by the test thread, used by the server's
        self._bodies: dict[tuple, object] = {}
        self._server: ServerThread | None = None
        self._created = int(time.time())

    # --- test controls --------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
        self.requests.clear()
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        self.disconnects = 0
        if (self.reply, self.prompt_tokens, self.completion_tokens) != self._initial_answer:
            self.reply, self.prompt_tokens, self.completion_tokens = self._initial_answer
            self._bodies.clear()

    def set_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The usage every later answer reports (the cached bodies are built again)."""
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
        self._bodies.clear()

    def set_reply(self, reply: str) -> None:
        """The assistant text every later answer (and stream) carries."""
        self.reply = reply
        self._bodies.clear()

    def fail(
        self,
        status: int,
        *,
        times: int | None = None,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        echo_header: str | None = None,
        **error,
    ):
        """Answer `status` with OpenAI's error body; `error` overrides message/type/param/code.

        `headers` are added to the response (e.g. retry-after); `echo_header` names a request
        header whose value the message repeats, as careless servers do with credentials.
        """
        self._add(
            Fault(
                status=status,
                error=error,
                times=times,
                model=model,
                headers=headers,
                echo_header=echo_header,
            )
        )

    def stall(
        self, *, after_chunks: int = 0, times: int | None = None, model: str | None = None
    ) -> None:
        """Send the response headers and `after_chunks` stream events (half of the body, for a
        request that is not streamed), then nothing more until the client gives up."""
        self._add(Fault(stall_after_chunks=after_chunks, times=times, model=model))

    def respond_raw(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        chunked: bool = False,
        times: int | None = None,
        model: str | None = None,
    ) -> None:
        """Answer exactly `body`, whatever was asked. `chunked` sends it in pieces, without a
        content-length."""
        self._add(
            Fault(
                status=status,
                raw_body=body,
                content_type=content_type,
                chunked=chunked,
                times=times,
                model=model,
            )
        )

    def hang(self, *, times: int | None = None, model: str | None = None) -> None:
        """Never answer; the request ends when the client gives up and disconnects."""
        self._add(Fault(hang=True, times=times, model=model))

    def drop_stream(
        self, *, after_chunks: int = 1, times: int | None = None, model: str | None = None
    ) -> None:
        """Start a stream, send `after_chunks` events, then close the connection."""
        self._add(Fault(drop_after_chunks=after_chunks, times=times, model=model))

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, model: str | None) -> Fault | None:
        if not self._faults:  # the benchmark's hot path: no lock when nothing is injected
            return None
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

    def received(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]

    # --- serving ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.azure_endpoint}/v1"

    @property
    def azure_endpoint(self) -> str:
        """The api_base of an azure_openai provider: the server's root, as a resource's is."""
        if self._server is None:
            raise RuntimeError("the fake upstream is not running")
        return self._server.url

    def start(self) -> "FakeUpstream":
        self._server = ServerThread(self)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

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
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            await _respond(send, 400, _error_body(400, message="We could not parse the JSON."))
            return
        method, path = scope["method"], scope["path"]
        # Azure names the deployment in the path; the endpoint is what follows it.
        deployment, endpoint = _azure_route(path)
        headers: dict[str, str] = {}
        if self.record or self.api_key is not None or self._faults or deployment is not None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if self.record:
                self.requests.append(ReceivedRequest(method, path, headers, body, query))
            refused = self._refusal(headers, query, azure=deployment is not None)
            if refused is not None:
                await _respond(send, *refused)
                return
        if deployment is not None and isinstance(body, dict):
            body = {**body, "model": deployment}  # Azure answers for the path's deployment
        model = body.get("model") if isinstance(body, dict) else None
        fault = self._take_fault(model)
        if self.delay_s and await sleep_or_disconnect(receive, self.delay_s):
            self.disconnects += 1
            return
        if fault is not None and fault.hang:
            await until_disconnect(receive)
            self.disconnects += 1
            return
        if fault is not None and fault.raw_body is not None:
            await _respond_raw(send, fault)
            return
        if fault is not None and fault.status is not None:
            error = dict(fault.error or {})
            if fault.echo_header is not None:
                echoed = headers.get(fault.echo_header, "")
                error["message"] = f"{error.get('message', 'Rejected')} ({echoed})"
            extra = [(k.encode(), v.encode()) for k, v in (fault.headers or {}).items()]
            await _respond(send, fault.status, _error_body(fault.status, **error), extra)
            return
        if fault is not None and fault.stall_after_chunks is not None:
            await self._stall(body, receive, send, fault.stall_after_chunks)
            return

        if endpoint == "/chat/completions" and method == "POST" and isinstance(body, dict):
            await self._chat(body, receive, send, fault)
        elif endpoint == "/embeddings" and method == "POST" and isinstance(body, dict):
            await _respond(send, 200, self._embeddings(body))
        elif path == "/v1/models" and method == "GET":
            await _respond(send, 200, self._models())
        else:
            await _respond(send, 404, _error_body(404, message=f"Unknown URL: {method} {path}"))

    def _refusal(self, headers: dict, query: dict, *, azure: bool) -> tuple[int, bytes] | None:
        """What the real service answers a request it will not serve, or None."""
        if not azure:
            if (
                self.api_key is not None
                and headers.get("authorization") != f"Bearer {self.api_key}"
            ):
                return 401, _error_body(401)
            return None
        if self.api_key is not None and headers.get("api-key") != self.api_key:
            return 401, json.dumps({"error": _AZURE_401}).encode()
        if query.get("api-version") != self.azure_api_version:
            return 404, json.dumps({"error": _AZURE_404}).encode()
        return None

    # --- bodies (built once per shape, then reused) ---------------------------------------------

    def _cached(self, key: tuple, build):
        found = self._bodies.get(key)
        if found is None:
            found = self._bodies[key] = build()
        return found

    def _envelope(self, kind: str, model: str) -> dict:
        return {
            "id": "chatcmpl-fake",
            "object": kind,
            "created": self._created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": _COMPLETION_DETAILS,
        }

    def _completion(self, model: str) -> bytes:
        def build() -> bytes:
            message = dict(role="assistant", content=self.reply, refusal=None, annotations=[])
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            body = {**self._envelope("chat.completion", model), "choices": [choice]}
            return json.dumps({**body, "usage": self._usage()}).encode()

        return self._cached(("chat", model), build)

    def _events(self, model: str, include_usage: bool) -> list[bytes]:
        def build() -> list[bytes]:
            base = self._envelope("chat.completion.chunk", model)
            # With include_usage, OpenAI puts "usage": null on every chunk before the last.
            if include_usage:
                base["usage"] = None
            words = self.reply.split(" ")
            deltas = [{"role": "assistant", "content": "", "refusal": None}]
            deltas += [{"content": w + " "} for w in words[:-1]] + [{"content": words[-1]}]
            choices = [dict(index=0, delta=d, logprobs=None, finish_reason=None) for d in deltas]
            choices.append(dict(index=0, delta={}, logprobs=None, finish_reason="stop"))
            events = [_sse({**base, "choices": [c]}) for c in choices]
            if include_usage:
                events.append(_sse({**base, "choices": [], "usage": self._usage()}))
            return [*events, b"data: [DONE]\n\n"]

        return self._cached(("stream", model, include_usage), build)

    def _tool_completion(self, model: str, tool: str) -> bytes:
        def build() -> bytes:
            call = {"id": TOOL_CALL_ID, "type": "function"}
            call["function"] = {"name": tool, "arguments": TOOL_ARGUMENTS}
            message = dict(role="assistant", content=None, refusal=None, tool_calls=[call])
            choice = {"index": 0, "message": message, "logprobs": None}
            choice["finish_reason"] = "tool_calls"
            body = {**self._envelope("chat.completion", model), "choices": [choice]}
            return json.dumps({**body, "usage": self._usage()}).encode()

        return self._cached(("tool", model, tool), build)

    def _tool_events(self, model: str, tool: str, include_usage: bool) -> list[bytes]:
        # As OpenAI streams a call: id, type and name first, then the arguments in pieces.
        def build() -> list[bytes]:
            base = self._envelope("chat.completion.chunk", model)
            if include_usage:
                base["usage"] = None
            head = {"index": 0, "id": TOOL_CALL_ID, "type": "function"}
            head["function"] = {"name": tool, "arguments": ""}
            half = len(TOOL_ARGUMENTS) // 2
            pieces = (TOOL_ARGUMENTS[:half], TOOL_ARGUMENTS[half:])
            deltas = [{"role": "assistant", "content": None, "tool_calls": [head]}]
            deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
            choices = [dict(index=0, delta=d, logprobs=None, finish_reason=None) for d in deltas]
            choices.append(dict(index=0, delta={}, logprobs=None, finish_reason="tool_calls"))
            events = [_sse({**base, "choices": [c]}) for c in choices]
            if include_usage:
                events.append(_sse({**base, "choices": [], "usage": self._usage()}))
            return [*events, b"data: [DONE]\n\n"]

        return self._cached(("tool-stream", model, tool, include_usage), build)

    async def _chat(self, body: dict, receive, send, fault: Fault | None) -> None:
        model = str(body.get("model", ""))
        tool = _tool_to_call(body)
        if not body.get("stream"):
            reply = self._completion(model) if tool is None else self._tool_completion(model, tool)
            await _respond(send, 200, reply)
            return
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        if tool is None:
            events = self._events(model, include_usage)
        else:
            events = self._tool_events(model, tool, include_usage)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        drop_after = fault.drop_after_chunks if fault is not None else None
        if not self.chunk_delay_s and drop_after is None:
            # Nothing to observe between events: one write is cheapest for the benchmark.
            await send({"type": "http.response.body", "body": b"".join(events)})
            return
        for index, event in enumerate(events):
            if drop_after is not None and index == drop_after:
                raise _DropConnection("fault injection: connection closed mid-stream")
            pause = self.chunk_delay_s if index else 0.0
            if pause and await sleep_or_disconnect(receive, pause):
                self.disconnects += 1
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _stall(self, body, receive, send, after_chunks: int) -> None:
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        if isinstance(body, dict) and body.get("stream"):
            options = body.get("stream_options") or {}
            events = self._events(model, bool(options.get("include_usage")))
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            for event in events[:after_chunks]:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        else:
            full = self._completion(model)
            length = [(b"content-length", str(len(full)).encode())]
            await send(
                {"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS + length}
            )
            half = full[: len(full) // 2]
            await send({"type": "http.response.body", "body": half, "more_body": True})
        await until_disconnect(receive)
        self.disconnects += 1

    def _embeddings(self, body: dict) -> bytes:
        inputs = body.get("input")
        # A string, or a list of token ids, is one input; otherwise one per list item.
        many = isinstance(inputs, list) and inputs and not isinstance(inputs[0], int)
        count = len(inputs) if many else 1
        as_base64 = body.get("encoding_format") == "base64"  # the openai SDK's default
        model = str(body.get("model", ""))

        def build() -> bytes:
            vector = [round((i + 1) / (EMBEDDING_DIMS + 1), 6) for i in range(EMBEDDING_DIMS)]
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIMS}f", *vector)).decode()
            data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
            tokens = EMBEDDING_TOKENS_PER_INPUT * count
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            body = {"object": "list", "data": data, "model": model, "usage": usage}
            return json.dumps(body).encode()

        return self._cached(("embed", model, count, as_base64), build)

    def _models(self) -> bytes:
        def build() -> bytes:
            created = self._created
            data = [dict(id=m, object="model", created=created, owned_by="fake") for m in MODELS]
            return json.dumps({"object": "list", "data": data}).encode()

        return self._cached(("models",), build)


def _azure_route(path: str) -> tuple[str | None, str]:
    """(deployment, endpoint) of an Azure OpenAI path, or (None, endpoint) of an OpenAI one."""
    if path.startswith(_AZURE_PREFIX):
        deployment, _, rest = path[len(_AZURE_PREFIX) :].partition("/")
        if deployment:
            return deployment, f"/{rest}"
    return None, path[3:] if path.startswith("/v1/") else ""


async def _respond(send, status: int, body: bytes, extra_headers=()) -> None:
    headers = _JSON_HEADERS + list(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _respond_raw(send, fault: Fault) -> None:
    body = fault.raw_body or b""
    headers = [(b"content-type", fault.content_type.encode())]
    if not fault.chunked:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    if not fault.chunked:
        await send({"type": "http.response.body", "body": body})
        return
    step = max(1, len(body) // 8)
    for offset in range(0, len(body), step):
        piece = body[offset : offset + step]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def until_disconnect(receive) -> None:
    # The body has been read, so the next message is the client's disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def sleep_or_disconnect(receive, seconds: float) -> bool:
    """Sleep, but wake early (returning True) if the client goes away meanwhile."""
    try:
        await asyncio.wait_for(until_disconnect(receive), timeout=seconds)
    except TimeoutError:
        return False
    return True


class ServerThread:
    """Any ASGI app under uvicorn in a daemon thread, on a port the OS picked."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, **config) -> None:
        # Binding here, before the thread starts, means the port is known and reserved at once.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        # A short graceful shutdown: hanging requests must not hold up the end of the session.
        config = uvicorn.Config(app, timeout_graceful_shutdown=1, **{**_UVICORN, **config})
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    # A slow streaming upstream for the benchmark's many-open-streams scenario: one event per
    # word of the reply, this many seconds apart (0, the default, sends a stream in one write).
    parser.add_argument("--chunk-delay-s", type=float, default=0.0)
    parser.add_argument("--reply", default=REPLY, help="the assistant text (one event per word)")
    args = parser.parse_args()
    # Not recording: a benchmark sends far more requests than anyone will inspect.
    upstream = FakeUpstream(record=False, reply=args.reply)
    upstream.chunk_delay_s = args.chunk_delay_s
    uvicorn.run(upstream, host=args.host, port=args.port, **_UVICORN)


if __name__ == "__main__":
    main()
