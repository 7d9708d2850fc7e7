"""Malformed requests are refused before anything is sent upstream."""

import pytest

from .support import MESSAGES, assert_no_usage_records, assert_openai_error, only_usage_record

LIMIT = 1024


def _post(gateway, content: bytes, headers: dict[str, str] | None = None, path=None):
    with gateway.http() as http:
        return http.post(
            path or "/v1/chat/completions",
            content=content,
            headers={"content-type": "application/json", **gateway.auth(), **(headers or {})},
        )


def _assert_bad_request(response, upstream, *, param=None, code=None) -> dict:
    error = assert_openai_error(response, 400, code)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert upstream.requests == []
    # The key was valid, so the refusal is logged against it.
    record = only_usage_record(response.headers["x-request-id"])
    assert record.status_code == 400
    assert record.error_type == (code or "invalid_request_error")
    return error


def test_malformed_json_is_a_bad_request(gateway, upstream):
    response = _post(gateway, b'{"model": "chat-fast", "messages": [')

    error = _assert_bad_request(response, upstream)
    assert "not valid JSON" in error["message"]


def test_empty_body_is_a_bad_request(gateway, upstream):
    error = _assert_bad_request(_post(gateway, b""), upstream)
    assert "empty" in error["message"]


@pytest.mark.parametrize("body", [b"[]", b'"chat-fast"', b"42", b"null"])
def test_json_that_is_not_an_object_is_a_bad_request(gateway, upstream, body):
    error = _assert_bad_request(_post(gateway, body), upstream)
    assert error["message"] == "request body must be a JSON object"


@pytest.mark.parametrize("model", [None, "", 42])
def test_missing_or_non_string_model_is_a_bad_request(gateway, upstream, model):
    body = {"messages": MESSAGES} if model is None else {"model": model, "messages": MESSAGES}
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json=body, headers=gateway.auth())

    _assert_bad_request(response, upstream, param="model")


def test_non_boolean_stream_flag_is_a_bad_request(gateway, upstream):
    body = {"model": "chat-fast", "messages": MESSAGES, "stream": "yes"}
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json=body, headers=gateway.auth())

    _assert_bad_request(response, upstream, param="stream")


def test_embeddings_without_input_is_a_bad_request(gateway, upstream):
    with gateway.http() as http:
        response = http.post(
            "/v1/embeddings", json={"model": "embed-small"}, headers=gateway.auth()
        )

    _assert_bad_request(response, upstream, param="input")


def _oversized() -> bytes:
    padding = "x" * (LIMIT * 2)
    return (
        b'{"model": "chat-fast", "messages": [{"role": "user", "content": "'
        + padding.encode()
        + b'"}]}'
    )


def test_body_over_the_limit_is_refused_from_its_content_length(gateway, upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT

    response = _post(gateway, _oversized())

    error = assert_openai_error(response, 413, "request_too_large")
    assert str(LIMIT) in error["message"]
    assert upstream.requests == []
    # Refused before authentication (the body is never read), so there is no row either.
    assert_no_usage_records()


def test_chunked_body_over_the_limit_is_refused(gateway, upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT
    body = _oversized()

    def chunks():  # a generator makes httpx send Transfer-Encoding: chunked, no Content-Length
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    with gateway.http() as http:
        request = http.build_request(
            "POST", "/v1/chat/completions", content=chunks(), headers=gateway.auth()
        )
        assert "content-length" not in request.headers
        response = http.send(request)

    assert_openai_error(response, 413, "request_too_large")
    assert upstream.requests == []
    assert_no_usage_records()


def test_body_within_the_limit_is_accepted(gateway, settings):
    settings.GATEWAY_MAX_BODY_BYTES = LIMIT
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "chat-fast", "messages": MESSAGES},
            headers=gateway.auth(),
        )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
    ],
)
def test_wrong_method_is_not_allowed(gateway, upstream, method, path, allowed):
    with gateway.http() as http:
        response = http.request(method, path, headers=gateway.auth())

    assert_openai_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed
    assert upstream.requests == []


def test_unknown_endpoint_is_not_found(gateway, upstream):
    with gateway.http() as http:
        response = http.post(
            "/v1/completions", json={"model": "chat-fast", "prompt": "hi"}, headers=gateway.auth()
        )

    assert_openai_error(response, 404, "unknown_url")
    assert upstream.requests == []
