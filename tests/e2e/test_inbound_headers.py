"""Request headers that cannot be forwarded are refused, not turned into a 500."""

from .support import MESSAGES, assert_openai_error, only_usage_record

CHAT = {"model": "chat-fast", "messages": MESSAGES}


def test_non_ascii_forwarded_header_is_a_bad_request(gateway, upstream):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json=CHAT,
            # httpx sends bytes as they are: here latin-1 "é".
            headers={**gateway.auth(), "openai-beta": b"assistants=v2;caf\xe9"},
        )

    error = assert_openai_error(response, 400, "invalid_header")
    assert "openai-beta" in error["message"]
    assert upstream.requests == []
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (400, "invalid_header")


def test_non_ascii_header_that_is_not_forwarded_is_ignored(gateway, upstream):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={**gateway.auth(), "x-client-note": b"caf\xe9", "openai-beta": "tools=v1"},
        )

    assert response.status_code == 200, response.text
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.headers["openai-beta"] == "tools=v1"
    assert "x-client-note" not in sent.headers


def test_non_ascii_bytes_in_the_key_are_an_invalid_key(gateway, upstream):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": b"Bearer sk-gw-caf\xe9"}
        )

    assert assert_openai_error(response, 401, "invalid_api_key")["message"] == "invalid API key"
    assert upstream.requests == []
