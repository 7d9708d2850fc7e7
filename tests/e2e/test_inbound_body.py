"""Request bodies are read bounded: counted as they arrive (413) and under a deadline (408)."""

import contextlib

import orjson

from . import rawhttp
from .support import MESSAGES, usage_records

LIMIT = 1024
CHAT = orjson.dumps({"model": "chat-fast", "messages": MESSAGES})


def _assert_refusal(response: rawhttp.RawResponse, status: int, code: str) -> dict:
    """OpenAI's error shape, the request id in header and body, and `connection: close`."""
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    error = orjson.loads(response.body)["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_chunked_body_is_refused_at_the_first_chunk_past_the_limit(gateway, upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT
    with rawhttp.connect(gateway.url) as sock:
        head = rawhttp.request_head(
            "POST",
            "/v1/chat/completions",
            {**gateway.auth(), "transfer-encoding": "chunked"},
        )
        # Past the limit, and never finished: a refusal proves the rest was not waited for.
        sock.sendall(head + rawhttp.chunk(b"x" * 600) + rawhttp.chunk(b"x" * 600))

        response = rawhttp.read_response(sock)

        error = _assert_refusal(response, 413, "request_too_large")
        assert str(LIMIT) in error["message"]
        assert rawhttp.closed_by_server(sock)
    assert upstream.requests == []
    assert usage_records() == []


def test_declared_length_over_the_limit_is_refused_before_the_body(gateway, upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT
    with rawhttp.connect(gateway.url) as sock:
        head = rawhttp.request_head(
            "POST", "/v1/chat/completions", {**gateway.auth(), "content-length": str(LIMIT + 1)}
        )
        sock.sendall(head)  # no body at all

        response = rawhttp.read_response(sock)

        _assert_refusal(response, 413, "request_too_large")
        assert rawhttp.closed_by_server(sock)
    assert upstream.requests == []


def test_chunked_body_within_the_limit_is_served(gateway, upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT
    with rawhttp.connect(gateway.url) as sock:
        head = rawhttp.request_head(
            "POST",
            "/v1/chat/completions",
            {**gateway.auth(), "transfer-encoding": "chunked", "content-type": "application/json"},
        )
        middle = len(CHAT) // 2
        sock.sendall(head + rawhttp.chunk(CHAT[:middle]))
        sock.sendall(rawhttp.chunk(CHAT[middle:]) + rawhttp.LAST_CHUNK)

        response = rawhttp.read_response(sock)

    assert response.status == 200, response.body
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["messages"] == MESSAGES


def test_stalled_body_is_refused_with_408_when_the_read_deadline_passes(
    gateway, upstream, settings
):
    settings.GATEWAY_BODY_READ_TIMEOUT_S = 0.5
    with rawhttp.connect(gateway.url) as sock:
        head = rawhttp.request_head(
            "POST", "/v1/chat/completions", {**gateway.auth(), "content-length": str(len(CHAT))}
        )
        sock.sendall(head + CHAT[: len(CHAT) // 2])  # and then nothing

        response = rawhttp.read_response(sock)

        error = _assert_refusal(response, 408, "request_timeout")
        assert "0.5 s" in error["message"]
        assert rawhttp.closed_by_server(sock)
    assert upstream.requests == []
    assert usage_records() == []


def test_many_half_sent_unauthenticated_bodies_are_all_closed_by_the_deadline(
    gateway, upstream, settings
):
    settings.GATEWAY_BODY_READ_TIMEOUT_S = 0.5
    head = rawhttp.request_head("POST", "/v1/chat/completions", {"content-length": "1000"})
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(rawhttp.connect(gateway.url)) for _ in range(50)]
        for sock in socks:
            sock.sendall(head + b"{" + b" " * 499)  # half of the declared body

        for sock in socks:
            _assert_refusal(rawhttp.read_response(sock), 408, "request_timeout")
            assert rawhttp.closed_by_server(sock)

    # The gateway is none the worse for it.
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions", content=CHAT, headers={**gateway.auth()}, timeout=5
        )
    assert response.status_code == 200
    assert len(upstream.received("/v1/chat/completions")) == 1
