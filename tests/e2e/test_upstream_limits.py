"""Upstream answers are bounded: an oversized body or event is an error, never buffered whole."""

import json

import openai
import pytest
from django.test import override_settings

from .support import MESSAGES, assert_openai_error, only_usage_record, wait_for_usage_record

HA = {"model": "chat-ha", "messages": MESSAGES}
LIMIT = 4096


def _post(gateway, body: dict):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth())


def _sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _chunk(text: str) -> bytes:
    return _sse(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@override_settings(GATEWAY_UPSTREAM_MAX_BODY_BYTES=LIMIT)
def test_non_streamed_body_over_the_limit_is_a_bad_gateway(gateway, upstream, chunked):
    body = json.dumps({"choices": [], "padding": "x" * (LIMIT * 4)}).encode()
    upstream.respond_raw(body, chunked=chunked)

    response = _post(gateway, HA)

    error = assert_openai_error(response, 502, "upstream_response_too_large")
    assert str(LIMIT) in error["message"]
    # Not retried elsewhere: the upstream did the work, the next one would be as large.
    assert len(upstream.received("/v1/chat/completions")) == 1
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_response_too_large")


@override_settings(GATEWAY_UPSTREAM_MAX_BODY_BYTES=LIMIT)
def test_non_streamed_body_under_the_limit_is_answered(gateway, upstream):
    completion = gateway.client().chat.completions.create(**HA)
    assert completion.choices[0].message.content


@override_settings(GATEWAY_UPSTREAM_MAX_EVENT_BYTES=LIMIT)
def test_stream_event_over_the_limit_ends_the_stream_with_an_error_event(gateway, upstream):
    big = _chunk("y" * (LIMIT * 2))
    upstream.respond_raw(
        _chunk("Hello") + _chunk(" there") + big + b"data: [DONE]\n\n",
        content_type="text/event-stream",
        chunked=True,
    )
    raw = gateway.client().chat.completions.with_raw_response.create(**HA, stream=True)
    received = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk.choices[0].delta.content)

    # The events before the oversized one were delivered; then the error.
    assert received == ["Hello", " there"]
    assert caught.value.body["code"] == "upstream_response_too_large"
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_response_too_large")


@override_settings(GATEWAY_UPSTREAM_MAX_EVENT_BYTES=LIMIT)
def test_stream_line_that_never_ends_is_cut_at_the_limit(gateway, upstream):
    upstream.respond_raw(
        _chunk("Hello") + b"data: " + b"z" * (LIMIT * 4),
        content_type="text/event-stream",
        chunked=True,
    )
    body = {**HA, "stream": True}

    with (
        gateway.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as resp,
    ):
        text = b"".join(resp.iter_raw())

    assert resp.status_code == 200
    assert b"z" * LIMIT not in text  # the oversized line never reached the client
    assert b'"code":"upstream_response_too_large"' in text
    record = wait_for_usage_record(resp.headers["x-request-id"])
    assert record.status_code == 502
