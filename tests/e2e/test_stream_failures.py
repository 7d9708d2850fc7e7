"""Streams that break after the first byte, from either end, are still logged exactly once."""

import time

import openai
import pytest

from .support import MESSAGES, wait_for_usage_record

STREAM = {"messages": MESSAGES, "stream": True}


def test_upstream_closing_mid_stream_ends_the_stream_with_an_error_event(gateway, upstream):
    upstream.drop_stream(after_chunks=2)
    raw = gateway.client().chat.completions.with_raw_response.create(model="chat-fast", **STREAM)
    received = []

    # Headers were sent long ago, so the failure can only be reported inside the stream.
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    assert len(received) == 2
    assert caught.value.body["code"] == "upstream_disconnected"
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_disconnected")
    assert record.stream is True
    # The usage chunk never came, so the row is an estimate, and says so.
    assert record.usage_estimated is True


def test_upstream_stalling_mid_stream_times_out_inside_the_stream(gateway, upstream):
    # chat-slow's provider times out after 0.5s without a byte; this upstream pauses longer.
    upstream.chunk_delay_s = 2.0
    raw = gateway.client().chat.completions.with_raw_response.create(model="chat-slow", **STREAM)

    with pytest.raises(openai.APIError) as caught:
        list(raw.parse())

    assert caught.value.body["code"] == "upstream_timeout"
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (504, "upstream_timeout")


def test_client_disconnect_mid_stream_is_logged_once_as_499(gateway, upstream):
    upstream.chunk_delay_s = 0.5  # slow enough that the client leaves long before the end
    body = {"model": "chat-fast", **STREAM}

    with (
        gateway.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as resp,
    ):
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        first = next(resp.iter_raw())
        assert first.startswith(b"data: ")
    # Leaving the block closed the connection with the stream unfinished.

    record = wait_for_usage_record(request_id)
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    assert record.stream is True
    assert record.api_key_id == gateway.api_key.pk
    assert record.ttft_ms is not None
    assert record.usage_estimated is True
    _wait_until(lambda: upstream.disconnects == 1)  # the upstream stream was let go too
    # Still exactly one row once everything has settled.
    assert wait_for_usage_record(request_id).pk == record.pk


def test_client_giving_up_before_the_response_is_logged_as_499(gateway, upstream):
    upstream.delay_s = 2.0

    with (
        pytest.raises(openai.APITimeoutError),
        gateway.client(timeout=0.5) as client,
    ):
        client.chat.completions.create(model="chat-fast", messages=MESSAGES)

    # The upstream was called (and a real one would bill for it), so the call is logged.
    [sent] = upstream.received("/v1/chat/completions")
    record = wait_for_usage_record(sent.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    assert record.stream is False


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.05)
