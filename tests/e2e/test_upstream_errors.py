"""Upstream failures before the first byte: passed through, fallen back from, or mapped."""

from decimal import Decimal

import openai
import pytest

from tests.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY

from .support import MESSAGES, assert_openai_error, expected_cost, only_usage_record

HA = {"model": "chat-ha", "messages": MESSAGES}


def _post(gateway, body: dict):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth())


def _upstream_models(upstream) -> list[str]:
    return [r.body["model"] for r in upstream.received("/v1/chat/completions")]


def test_upstream_bad_request_is_passed_through_in_our_shape(gateway, upstream):
    # Within the API's range (the gateway's own check passes it), beyond this upstream's.
    upstream.fail(
        400,
        message="Invalid value for 'temperature': must be at most 1.",
        type="invalid_request_error",
        param="temperature",
        code="invalid_value",
    )

    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(**HA, temperature=1.5)

    response = caught.value.response
    error = assert_openai_error(response, 400, "invalid_value")
    assert error["message"] == "Invalid value for 'temperature': must be at most 1."
    assert error["param"] == "temperature"
    assert error["type"] == "invalid_request_error"
    # The caller's own mistake: another deployment would refuse it too, so none is tried.
    assert _upstream_models(upstream) == ["fake-chat-primary"]
    assert response.headers["x-gateway-attempts"] == "1"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type, record.attempts) == (400, "invalid_value", 1)
    assert record.provider_name == "fake-primary"


def test_server_error_on_the_first_deployment_falls_back_to_the_second(gateway, upstream):
    upstream.fail(500, model="fake-chat-primary")

    raw = gateway.client().chat.completions.with_raw_response.create(**HA)

    assert raw.parse().choices[0].message.content == REPLY
    # A 5xx is retried once on the same deployment (retries.py), then the next one serves.
    assert raw.headers["x-gateway-attempts"] == "3"
    assert raw.headers["x-gateway-deployment"] == "fake-backup/fake-chat-backup"
    assert raw.headers["x-gateway-provider"] == "fake-backup"
    fallbacks = "; ".join(["fake-primary/fake-chat-primary: upstream_error"] * 2)
    assert raw.headers["x-gateway-fallbacks"] == fallbacks
    cost = expected_cost("fake-chat-backup", PROMPT_TOKENS, COMPLETION_TOKENS)
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == cost
    assert _upstream_models(upstream) == [
        "fake-chat-primary",
        "fake-chat-primary",
        "fake-chat-backup",
    ]
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.attempts, record.error_type) == (200, 3, "")
    assert (record.provider_name, record.upstream_model) == ("fake-backup", "fake-chat-backup")
    assert record.fallbacks == fallbacks
    assert record.cost_usd == cost


def test_stream_falls_back_when_the_first_deployment_is_overloaded(gateway, upstream):
    upstream.fail(503, model="fake-chat-primary")

    raw = gateway.client().chat.completions.with_raw_response.create(**HA, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse())

    assert text == REPLY
    assert raw.headers["x-gateway-attempts"] == "3"  # overloaded: one retry, then the next
    assert raw.headers["x-gateway-deployment"] == "fake-backup/fake-chat-backup"
    assert _upstream_models(upstream) == [
        "fake-chat-primary",
        "fake-chat-primary",
        "fake-chat-backup",
    ]


def test_fault_for_only_the_next_request_is_retried_within_the_same_call(gateway, upstream):
    upstream.fail(500, times=1)

    first = _post(gateway, HA)
    second = _post(gateway, HA)

    assert first.headers["x-gateway-attempts"] == "2"
    assert second.headers["x-gateway-attempts"] == "1"
    assert second.headers["x-gateway-deployment"] == "fake-primary/fake-chat-primary"


def test_every_deployment_failing_is_a_bad_gateway(gateway, upstream):
    upstream.fail(500)

    with pytest.raises(openai.InternalServerError) as caught:
        gateway.client().chat.completions.create(**HA)

    response = caught.value.response
    error = assert_openai_error(response, 502, "upstream_error")
    assert error["type"] == "upstream_error"
    # Each deployment: the attempt and one retry.
    assert response.headers["x-gateway-attempts"] == "4"
    assert _upstream_models(upstream) == [
        "fake-chat-primary",
        "fake-chat-primary",
        "fake-chat-backup",
        "fake-chat-backup",
    ]
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type, record.attempts) == (502, "upstream_error", 4)
    assert record.cost_usd == 0


def test_upstream_rate_limiting_everywhere_is_a_rate_limit(gateway, upstream):
    upstream.fail(429)

    response = _post(gateway, HA)

    error = assert_openai_error(response, 429, "upstream_rate_limited")
    assert "rate limiting" in error["message"]
    assert len(upstream.requests) == 2
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_upstream_rejecting_the_gateways_credential_is_not_echoed(gateway, upstream):
    upstream.fail(401, message="Incorrect API key provided: sk-provi***cret.")

    response = _post(gateway, {"model": "chat-fast", "messages": MESSAGES})

    error = assert_openai_error(response, 502, "upstream_error")
    # Upstream text about the provider credential stays inside the gateway.
    assert "sk-provi" not in response.text
    assert "credentials" in error["message"]


def test_connection_refused_is_service_unavailable(gateway, upstream):
    response = _post(gateway, {"model": "chat-down", "messages": MESSAGES})

    assert_openai_error(response, 503, "upstream_unavailable")
    assert response.headers["x-gateway-deployment"] == "closed-port/fake-chat-down"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (503, "upstream_unavailable")
    assert record.provider_name == "closed-port"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_that_never_answers_times_out(gateway, upstream, stream):
    upstream.hang()

    response = _post(gateway, {"model": "chat-slow", "messages": MESSAGES, "stream": stream})

    assert_openai_error(response, 504, "upstream_timeout")
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-chat-slow"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type, record.stream) == (
        504,
        "upstream_timeout",
        stream,
    )
