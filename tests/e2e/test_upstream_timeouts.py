"""Timeouts per provider (overridable per deployment) and a deadline per request.

Before the first byte reaches the client a timeout falls back to the next deployment (504 when
none is left); after it, the stream ends with an error event and is never retried.
"""

import socket

import openai
import pytest
from django.test import override_settings

from gateway.config import config_load
from tests.fake_upstream import REPLY

from .support import (
    MESSAGES,
    PROVIDER_SECRET,
    assert_openai_error,
    only_usage_record,
    wait_for_usage_record,
)

CONFIG = """
providers:
  - name: tight
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    first_byte_timeout_s: 0.5
    idle_timeout_s: 0.5
    attempt_timeout_s: 30
  - name: patient
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    first_byte_timeout_s: 30
    idle_timeout_s: 30
  - name: unaccepting
    kind: openai_compatible
    api_base: "http://127.0.0.1:{backlog_port}/v1"
    connect_timeout_s: 0.5
models:
  - name: chat-tight
    deployments:
      - {{provider: tight, model: fake-tight}}
  - name: chat-tight-ha
    deployments:
      - {{provider: tight, model: fake-tight-primary, input_cost_per_mtok: 0.1}}
      - {{provider: patient, model: fake-tight-backup, input_cost_per_mtok: 1}}
  # Patient provider, impatient deployment.
  - name: chat-override
    deployments:
      - {{provider: patient, model: fake-override, first_byte_timeout_s: 0.5}}
  # Chunks may be slow, but the whole attempt is short.
  - name: chat-drip
    deployments:
      - {{provider: patient, model: fake-drip, attempt_timeout_s: 1}}
  - name: chat-patient-ha
    deployments:
      - {{provider: patient, model: fake-patient-primary, input_cost_per_mtok: 0.1}}
      - {{provider: patient, model: fake-patient-backup, input_cost_per_mtok: 1}}
  - name: chat-unaccepting
    deployments:
      - {{provider: unaccepting, model: fake-unaccepting}}
teams:
  - slug: e2e
    allowed_models: ["*"]
"""

# Client-side limit for calls that must end by a gateway timeout long before it.
CLIENT_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def backlog_port():
    """A port whose accept queue is full: connecting hangs, as with a dropped SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()


@pytest.fixture
def gw(gateway, upstream, backlog_port):
    text = CONFIG.format(base=upstream.base_url, secret=PROVIDER_SECRET, backlog_port=backlog_port)
    config_load(text=text)
    return gateway


def _post(gw, body: dict):
    with gw.http() as http:
        return http.post(
            "/v1/chat/completions", json=body, headers=gw.auth(), timeout=CLIENT_TIMEOUT_S
        )


def _upstream_models(upstream) -> list[str]:
    return [r.body["model"] for r in upstream.received("/v1/chat/completions")]


def _text(stream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# --- before the first byte: fall back, or 504 ---------------------------------------------------


def test_no_first_byte_in_time_falls_back_to_the_next_deployment(gw, upstream):
    upstream.hang(model="fake-tight-primary")

    raw = gw.client().chat.completions.with_raw_response.create(
        model="chat-tight-ha", messages=MESSAGES
    )

    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-gateway-attempts"] == "2"
    assert _upstream_models(upstream) == ["fake-tight-primary", "fake-tight-backup"]


@pytest.mark.parametrize("stream", [False, True])
def test_no_first_byte_in_time_with_no_fallback_is_a_gateway_timeout(gw, upstream, stream):
    upstream.hang()

    response = _post(gw, {"model": "chat-tight", "messages": MESSAGES, "stream": stream})

    error = assert_openai_error(response, 504, "upstream_timeout")
    assert "first byte" in error["message"]
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (504, "upstream_timeout")


def test_stream_with_headers_but_no_first_chunk_falls_back(gw, upstream):
    # Headers at once, then silence: the first-byte timeout covers the first chunk.
    upstream.stall(after_chunks=0, model="fake-tight-primary")

    raw = gw.client().chat.completions.with_raw_response.create(
        model="chat-tight-ha", messages=MESSAGES, stream=True
    )

    assert _text(raw.parse()) == REPLY
    assert raw.headers["x-gateway-deployment"] == "patient/fake-tight-backup"
    assert _upstream_models(upstream) == ["fake-tight-primary", "fake-tight-backup"]


def test_stream_with_headers_but_no_first_chunk_and_no_fallback_is_a_gateway_timeout(gw, upstream):
    upstream.stall(after_chunks=0)

    response = _post(gw, {"model": "chat-tight", "messages": MESSAGES, "stream": True})

    # Nothing was committed: a plain JSON error, not a stream.
    assert_openai_error(response, 504, "upstream_timeout")
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.stream) == (504, True)


def test_non_streamed_body_that_stops_half_way_falls_back(gw, upstream):
    upstream.stall(model="fake-tight-primary")  # headers and half the body, then silence

    raw = gw.client().chat.completions.with_raw_response.create(
        model="chat-tight-ha", messages=MESSAGES
    )

    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-gateway-attempts"] == "2"


def test_deployment_timeout_overrides_the_providers(gw, upstream):
    upstream.hang()

    # The provider would wait 30 s; the deployment's 0.5 s applies.
    response = _post(gw, {"model": "chat-override", "messages": MESSAGES})

    assert_openai_error(response, 504, "upstream_timeout")


def test_connect_timeout_is_a_gateway_timeout(gw, upstream):
    response = _post(gw, {"model": "chat-unaccepting", "messages": MESSAGES})

    assert_openai_error(response, 504, "upstream_timeout")
    assert response.headers["x-gateway-deployment"] == "unaccepting/fake-unaccepting"


def test_attempt_timeout_bounds_a_non_streamed_call(gw, upstream):
    upstream.hang()

    # First byte would be allowed 30 s; the whole attempt only 1 s.
    response = _post(gw, {"model": "chat-drip", "messages": MESSAGES})

    assert_openai_error(response, 504, "upstream_timeout")


@override_settings(GATEWAY_REQUEST_DEADLINE_S=0.6)
def test_request_deadline_leaves_no_time_for_a_fallback(gw, upstream):
    upstream.hang()

    response = _post(gw, {"model": "chat-patient-ha", "messages": MESSAGES})

    assert_openai_error(response, 504, "upstream_timeout")
    # Each deployment would wait 30 s; the request's deadline ended the first attempt and
    # left nothing for the second.
    assert _upstream_models(upstream) == ["fake-patient-primary"]
    assert response.headers["x-gateway-attempts"] == "1"


# --- after the first byte: an error event, never a retry ----------------------------------------


def test_upstream_idle_mid_stream_ends_it_with_an_error_event_and_no_retry(gw, upstream):
    upstream.stall(after_chunks=2, model="fake-tight-primary")
    raw = gw.client().chat.completions.with_raw_response.create(
        model="chat-tight-ha", messages=MESSAGES, stream=True
    )
    received = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    assert len(received) == 2
    assert caught.value.body["code"] == "upstream_timeout"
    assert "sent nothing" in caught.value.body["message"]
    assert _upstream_models(upstream) == ["fake-tight-primary"]  # bytes were sent: no retry
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (504, "upstream_timeout")
    assert record.usage_estimated is True


def test_attempt_timeout_ends_a_slowly_dripping_stream(gw, upstream):
    # Each gap (0.3 s) is well within the idle timeout; the whole stream is not within 1 s.
    upstream.chunk_delay_s = 0.3
    raw = gw.client().chat.completions.with_raw_response.create(
        model="chat-drip", messages=MESSAGES, stream=True
    )
    received = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    assert received  # it had started
    assert caught.value.body["code"] == "upstream_timeout"
    assert "time limit" in caught.value.body["message"]
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (504, "upstream_timeout")
    assert upstream.disconnects == 1  # the upstream connection was let go
