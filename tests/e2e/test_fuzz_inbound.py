"""Generated requests through the real gateway (ASGI under uvicorn, on a socket) to the fake
OpenAI upstream: each dialect's endpoint gets bodies that follow its wire format, the same with
one field broken, arbitrary JSON and arbitrary bytes, with generated header values beside them.

No answer is a 5xx. A refusal is a 4xx in the dialect's error shape carrying the request id;
an accepted request is answered in the dialect's shape (a chat completion, an embeddings list,
an Anthropic message, or a stream that ends with the format's end marker). /v1/messages is
served by the fake's OpenAI wire format, so Anthropic bodies cross formats both ways.
"""

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import helpers_fuzz as f

# Function-scoped fixtures (the configured gateway, its key) serve every example: they are
# read-only here, and starting the servers per example would dominate the run. Each test
# draws its endpoint, so the per-test database reset is paid three times: three times the profile's
# examples (75 in "ci") make ~225 requests in all.
fuzz = settings(
    max_examples=settings.default.max_examples * 3,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

AZURE_CHAT = "/openai/deployments/chat-fast/chat/completions?api-version=2024-10-21"
# (path, dialect, the model the team may use there, the strategy of its wire format)
ENDPOINTS = [
    ("/v1/chat/completions", "openai", "chat-fast", f.openai_chat),
    ("/v1/embeddings", "openai", "embed-small", f.embeddings),
    ("/v1/messages", "anthropic", "chat-fast", f.anthropic_chat),
    (AZURE_CHAT, "openai", "chat-fast", f.openai_chat),
]
endpoints = st.sampled_from(ENDPOINTS)
# Printable latin-1 without surrounding blanks: what an HTTP client may put in a header value.
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
).map(str.strip)


def _headers(gateway, dialect: str, tags: str | None, route_tag: str | None) -> dict:
    headers = {"content-type": "application/json"}
    headers["x-api-key" if dialect == "anthropic" else "authorization"] = (
        gateway.key if dialect == "anthropic" else f"Bearer {gateway.key}"
    )
    if tags is not None:
        headers["x-gateway-tags"] = tags.encode("latin-1")
    if route_tag is not None:
        headers["x-gateway-route-tag"] = route_tag.encode("latin-1")
    return headers


def assert_refusal_shape(response, dialect: str) -> None:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    request_id = response.headers["x-request-id"]
    if dialect == "anthropic":
        assert body["type"] == "error" and body["request_id"] == request_id
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)
    else:
        error = body["error"]
        assert {"message", "type", "param", "code"} <= set(error)
        assert error["request_id"] == request_id
        assert error["param"] is None or isinstance(error["param"], str)


def assert_answer_shape(response, dialect: str, path: str, stream: bool) -> None:
    assert response.status_code == 200, response.text
    if stream:
        assert response.headers["content-type"].startswith("text/event-stream")
        end = b"event: message_stop" if dialect == "anthropic" else b"data: [DONE]"
        assert end in response.content, response.content[-300:]
        return
    body = response.json()
    if dialect == "anthropic":
        assert body["type"] == "message" and body["role"] == "assistant"
        assert isinstance(body["usage"]["input_tokens"], int)
    elif "embeddings" in path:
        assert body["object"] == "list" and body["data"]
    else:
        assert body["object"] == "chat.completion" and body["choices"]


def send(gateway, http, path: str, dialect: str, content: bytes, headers: dict):
    response = http.post(path, content=content, headers=headers)
    assert response.status_code < 500, (path, content[:300], response.text)
    return response


@fuzz
@given(endpoint=endpoints, data=st.data())
def test_a_body_of_the_wire_format_is_answered_in_the_dialects_shape(gateway, endpoint, data):
    path, dialect, model, valid = endpoint
    body = {**data.draw(valid), "model": model}
    with gateway.http() as http:
        response = send(
            gateway, http, path, dialect, orjson.dumps(body), _headers(gateway, dialect, None, None)
        )
    if response.status_code == 200:
        assert_answer_shape(response, dialect, path, body.get("stream") is True)
    else:
        # Only what the team's routes cannot serve is refused (a capability they lack, a
        # translation's documented refusal): a 400, never a 401, 404 or 413.
        assert_refusal_shape(response, dialect)
        assert response.status_code == 400, response.text


@fuzz
@given(
    endpoint=endpoints,
    data=st.data(),
    tags=st.none() | header_values,
    route_tag=st.none() | header_values,
)
def test_a_broken_body_or_header_is_refused_in_the_dialects_shape(
    gateway, endpoint, data, tags, route_tag
):
    path, dialect, model, valid = endpoint
    body = data.draw(f.broken(valid.map(lambda b: {**b, "model": model})))
    headers = _headers(gateway, dialect, tags, route_tag)
    with gateway.http() as http:
        response = send(gateway, http, path, dialect, orjson.dumps(body), headers)
    if response.status_code != 200:
        assert_refusal_shape(response, dialect)


@fuzz
@given(endpoint=endpoints, content=st.binary(max_size=80) | f.json_values.map(orjson.dumps))
def test_arbitrary_bytes_and_json_are_refused_in_the_dialects_shape(gateway, endpoint, content):
    path, dialect, _, _ = endpoint
    with gateway.http() as http:
        response = send(
            gateway, http, path, dialect, content, _headers(gateway, dialect, None, None)
        )
    assert_refusal_shape(response, dialect)
