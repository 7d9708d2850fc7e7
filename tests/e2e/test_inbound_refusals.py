"""Requests refused before the caller is known leave no usage row: they are counted and logged."""

import logging

import pytest

from gateway.proxy.refusals import REFUSALS

from . import rawhttp
from .support import MESSAGES, only_usage_record, usage_records

CHAT = {"model": "chat-fast", "messages": MESSAGES}
# Our format, but no such key: its first 12 characters are the part the portal shows.
UNKNOWN_KEY = "sk-gw-abcdefSECRETPARTSECRETPARTSECRETPART0123"


@pytest.fixture
def refusal_log(caplog):
    caplog.set_level(logging.INFO, logger="gateway.refusals")

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "gateway.refusals"]

    return records


def _only_refusal(records, response) -> logging.LogRecord:
    [record] = records()
    assert record.event == "request_refused"
    assert record.request_id == response.headers["x-request-id"]
    assert record.status == response.status_code
    assert record.client == "127.0.0.1"
    return record


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "reason"),
    [
        ("POST", "/v1/chat/completions", {"json": CHAT}, 401, "invalid_api_key"),
        ("POST", "/v1/chat/completions", {"content": b"{not json"}, 401, "invalid_api_key"),
        ("GET", "/v1/models", {}, 401, "invalid_api_key"),
        ("GET", "/v1/models/chat-fast", {}, 401, "invalid_api_key"),
        ("GET", "/v1/chat/completions", {}, 405, "method_not_allowed"),
        ("POST", "/v1/completions", {"json": CHAT}, 404, "unknown_url"),
    ],
    ids=["no key", "bad json, no key", "models", "one model", "wrong method", "unknown path"],
)
def test_refusal_before_authentication_is_counted_and_logged(
    gateway, upstream, refusal_log, method, path, kwargs, status, reason
):
    before = REFUSALS[(status, reason)]
    with gateway.http() as http:
        response = http.request(method, path, **kwargs)

    assert response.status_code == status
    record = _only_refusal(refusal_log, response)
    assert (record.reason, record.method, record.path) == (reason, method, path)
    assert record.levelno == logging.INFO
    assert record.key_prefix == ""
    assert REFUSALS[(status, reason)] == before + 1
    assert upstream.requests == []
    assert usage_records() == []


def test_unknown_key_is_logged_by_its_visible_prefix_only(gateway, refusal_log, caplog):
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json=CHAT, headers=gateway.auth(UNKNOWN_KEY))

    record = _only_refusal(refusal_log, response)
    assert record.key_prefix == "sk-gw-abcdef"
    assert "SECRETPART" not in caplog.text
    assert all("SECRETPART" not in str(vars(r)) for r in caplog.records)


def test_foreign_key_is_not_logged_at_all(gateway, refusal_log, caplog):
    foreign = "sk-proj-SOMEONESOPENAIKEY"
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json=CHAT, headers=gateway.auth(foreign))

    assert _only_refusal(refusal_log, response).key_prefix == ""
    assert "SOMEONES" not in caplog.text
    assert all("SOMEONES" not in str(vars(r)) for r in caplog.records)


def test_oversized_and_stalled_bodies_are_logged_as_warnings(gateway, refusal_log, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 1024
    settings.GATEWAY_BODY_READ_TIMEOUT_S = 0.5
    before = (REFUSALS[(413, "request_too_large")], REFUSALS[(408, "request_timeout")])
    with rawhttp.connect(gateway.url) as sock:
        sock.sendall(rawhttp.request_head("POST", "/v1/embeddings", {"content-length": "4096"}))
        too_large = rawhttp.read_response(sock)
    with rawhttp.connect(gateway.url) as sock:
        sock.sendall(rawhttp.request_head("POST", "/v1/embeddings", {"content-length": "100"}))
        stalled = rawhttp.read_response(sock)

    first, second = refusal_log()
    assert (first.status, first.reason, first.levelno) == (413, "request_too_large", 30)
    assert first.request_id == too_large.headers["x-request-id"]
    assert (second.status, second.reason, second.levelno) == (408, "request_timeout", 30)
    assert second.request_id == stalled.headers["x-request-id"]
    assert {first.client, second.client} == {"127.0.0.1"}
    assert (REFUSALS[(413, "request_too_large")], REFUSALS[(408, "request_timeout")]) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_forwarded_address_is_logged_only_from_a_trusted_proxy(gateway, refusal_log, settings):
    forwarded = {"x-forwarded-for": "198.51.100.1, 203.0.113.7"}
    with gateway.http() as http:
        http.post("/v1/chat/completions", json=CHAT, headers=forwarded)
        settings.GATEWAY_TRUSTED_PROXIES = ["127.0.0.0/8"]
        http.post("/v1/chat/completions", json=CHAT, headers=forwarded)

    untrusted, trusted = refusal_log()
    assert untrusted.client == "127.0.0.1"
    # The right-most hop the trusted proxy (the test, on 127.0.0.1) vouches for.
    assert trusted.client == "203.0.113.7"


def test_refusal_after_authentication_is_a_usage_row_not_a_refusal(gateway, refusal_log):
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", content=b"{not json", headers=gateway.auth())

    assert response.status_code == 400
    assert refusal_log() == []
    assert only_usage_record(response.headers["x-request-id"]).status_code == 400
