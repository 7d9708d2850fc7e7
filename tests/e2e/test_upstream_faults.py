"""Upstream misbehaviour the gateway must not pass on: a 200 that is not an event stream, a
credential echoed in an error, a rate limit whose Retry-After would be lost."""

import json

import openai
import pytest

from tests.fake_upstream import REPLY

from .support import (
    MESSAGES,
    PROVIDER_SECRET,
    assert_openai_error,
    only_usage_record,
    wait_for_usage_record,
)

FAST = {"model": "chat-fast", "messages": MESSAGES}
HA = {"model": "chat-ha", "messages": MESSAGES}

NOT_A_STREAM = {
    "html": (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "json": (b'{"choices": []}', "application/json"),
    "empty event stream": (b"", "text/event-stream"),
}


def _post(gateway, body: dict):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth())


def _upstream_models(upstream) -> list[str]:
    return [r.body["model"] for r in upstream.received("/v1/chat/completions")]


# --- a 200 that is not an event stream ----------------------------------------------------------


@pytest.mark.parametrize("answer", NOT_A_STREAM.values(), ids=NOT_A_STREAM.keys())
def test_a_200_that_is_not_an_event_stream_is_a_bad_gateway(gateway, upstream, answer):
    body, content_type = answer
    upstream.respond_raw(body, content_type=content_type)

    response = _post(gateway, {**FAST, "stream": True})

    # Decided before anything was committed: a JSON error, not a 200 stream.
    assert_openai_error(response, 502, "upstream_error")
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type, record.stream) == (502, "upstream_error", True)


def test_a_200_that_is_not_an_event_stream_falls_back_to_the_next_deployment(gateway, upstream):
    body, content_type = NOT_A_STREAM["html"]
    upstream.respond_raw(body, content_type=content_type, model="fake-chat-primary")

    raw = gateway.client().chat.completions.with_raw_response.create(**HA, stream=True)

    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == REPLY
    assert raw.headers["x-gateway-deployment"] == "fake-backup/fake-chat-backup"


# --- credentials echoed by the upstream ---------------------------------------------------------


def test_an_upstream_error_echoing_the_credential_is_relayed_without_it(gateway, upstream):
    upstream.fail(400, echo_header="authorization", message="Bad header", param=PROVIDER_SECRET)

    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(**FAST)

    response = caught.value.response
    error = assert_openai_error(response, 400)
    assert PROVIDER_SECRET not in response.text
    assert error["message"] == "Bad header (Bearer [REDACTED])"
    assert error["param"] == "[REDACTED]"


def test_an_error_event_echoing_the_credential_is_relayed_without_it(gateway, upstream):
    event = {"error": {"message": f"key Bearer {PROVIDER_SECRET} is over quota", "code": "q"}}
    upstream.respond_raw(
        b"data: " + json.dumps(event).encode() + b"\n\n",
        content_type="text/event-stream",
    )

    with (
        gateway.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={**FAST, "stream": True},
            headers=gateway.auth(),
        ) as response,
    ):
        text = b"".join(response.iter_raw()).decode()

    assert PROVIDER_SECRET not in text
    assert "key Bearer [REDACTED] is over quota" in text


# --- rate limits --------------------------------------------------------------------------------


def test_a_rate_limit_with_no_fallback_left_is_a_429_with_the_providers_retry_after(
    gateway, upstream
):
    upstream.fail(429, headers={"retry-after": "7", "retry-after-ms": "6500"})

    with pytest.raises(openai.RateLimitError) as caught:
        gateway.client().chat.completions.create(**FAST)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "7"
    assert response.headers["retry-after-ms"] == "6500"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_a_rate_limit_with_a_fallback_left_falls_back(gateway, upstream):
    upstream.fail(429, headers={"retry-after": "7"}, model="fake-chat-primary")

    raw = gateway.client().chat.completions.with_raw_response.create(**HA)

    assert raw.parse().choices[0].message.content == REPLY
    assert "retry-after" not in raw.headers
    assert _upstream_models(upstream) == ["fake-chat-primary", "fake-chat-backup"]


def test_a_rate_limited_stream_is_a_429_before_anything_is_streamed(gateway, upstream):
    upstream.fail(429, headers={"retry-after": "3"})

    response = _post(gateway, {**FAST, "stream": True})

    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "3"
    assert wait_for_usage_record(response.headers["x-request-id"]).status_code == 429


@pytest.mark.parametrize(
    "headers",
    [{}, {"retry-after": "soon, I promise"}, {"retry-after-ms": "-5"}],
    ids=["none", "not a number or a date", "negative ms"],
)
def test_a_missing_or_malformed_retry_after_is_not_passed_on(gateway, upstream, headers):
    upstream.fail(429, headers=headers)

    response = _post(gateway, FAST)

    assert_openai_error(response, 429, "upstream_rate_limited")
    assert "retry-after" not in response.headers
    assert "retry-after-ms" not in response.headers


def test_a_retry_after_date_is_passed_on(gateway, upstream):
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    upstream.fail(429, headers={"retry-after": when})

    response = _post(gateway, FAST)

    assert response.status_code == 429
    assert response.headers["retry-after"] == when
