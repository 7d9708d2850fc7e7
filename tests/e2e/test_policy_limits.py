"""Policies and rate limits through the official SDK: denials name the rule and its level, limits
answer 429 with Retry-After and OpenAI's x-ratelimit-* headers, and windows roll over."""

import math
import time

import openai
import pytest
from django.conf import settings

from policies.models import ModelLimit, Policy

from .budget_support import set_team_policy
from .support import MESSAGES, assert_openai_error, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


def _chat(gateway, key=None, **extra):
    with gateway.http() as http:
        body = {"model": "chat-fast", "messages": MESSAGES, **extra}
        headers = {**gateway.auth(key), **extra.pop("_headers", {})}
        return http.post("/v1/chat/completions", json=body, headers=headers)


def test_rpm_limit_is_exact_with_headers_and_retry_after(gateway, upstream):
    set_team_policy(gateway.team, rpm=3)
    first = _chat(gateway)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert [_chat(gateway).status_code for _ in range(2)] == [200, 200]

    refused = _chat(gateway)
    body = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert body["message"].startswith(f"team '{gateway.team.slug}' allows 3 requests")
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # Every request, refused ones included, has its usage row.
    records = wait_for_usage_records(4)
    assert sorted(r.status_code for r in records) == [200, 200, 200, 429]


def test_rpm_window_rolls_over(gateway, upstream):
    # 60 per minute: once the burst is spent, one more request is allowed every second.
    set_team_policy(gateway.team, rpm=60)
    started = time.monotonic()
    statuses = []
    while 429 not in statuses and len(statuses) < 100:
        statuses.append(_chat(gateway).status_code)
    elapsed = time.monotonic() - started
    # The burst, plus one per second that sending it took: never a second minute's worth.
    assert 60 <= statuses.count(200) <= 60 + math.ceil(elapsed)
    refused = _chat(gateway)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    time.sleep(1.1)
    assert _chat(gateway).status_code == 200


def test_tpm_limit_counts_actual_tokens(gateway, exact_usage):
    set_team_policy(gateway.team, tpm=2500)
    assert _chat(gateway, max_tokens=1000).status_code == 200
    second = _chat(gateway, max_tokens=1000)
    assert second.status_code == 200
    remaining = int(second.headers["x-ratelimit-remaining-tokens"])
    assert 0 < remaining < 1000
    refused = _chat(gateway, max_tokens=1000)
    body = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert "2500 tokens per minute" in body["message"]
    # Each row records what its request reserved: the prompt estimate plus max_tokens.
    records = wait_for_usage_records(3)
    served = [r for r in records if r.status_code == 200]
    assert all(1000 < r.reserved_tokens < 1100 for r in served)
    assert all(r.input_tokens + r.output_tokens > r.reserved_tokens for r in served)


def test_key_limit_and_per_model_limit_and_end_user_limit(gateway, upstream):
    Policy.objects.create(api_key=gateway.api_key, rpm=100)
    ModelLimit.objects.create(team=gateway.team, model="chat-fast", rpm=2)
    set_team_policy(gateway.team, user_rpm=1)
    assert _chat(gateway, user="alice").status_code == 200
    refused = _chat(gateway, user="alice")
    body = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert "end users of team" in body["message"]
    assert "alice" not in refused.text  # an end user id may be personal data
    assert _chat(gateway, user="bob").status_code == 200
    refused = _chat(gateway, user="carol")
    body = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert "model 'chat-fast'" in body["message"]
    with gateway.http() as http:
        other_model = http.post(
            "/v1/chat/completions",
            json={"model": "chat-ha", "messages": MESSAGES, "user": "dave"},
            headers=gateway.auth(),
        )
    assert other_model.status_code == 200


def test_denials_name_the_rule_and_level(gateway, upstream):
    set_team_policy(gateway.team, allowed_models=["chat-ha"])
    with gateway.client() as client, pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="chat-fast", messages=MESSAGES)
    assert caught.value.body["message"] == f"team '{gateway.team.slug}' allows models: chat-ha"
    assert caught.value.body["code"] == "model_not_allowed"


def test_blocked_term_is_refused_without_echoing_it(gateway, upstream):
    set_team_policy(gateway.team, blocked_terms=["project nightingale"])
    messages = [{"role": "user", "content": "Tell me about Project Nightingale please."}]
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "chat-fast", "messages": messages},
            headers=gateway.auth(),
        )
    body = assert_openai_error(response, 403, "blocked_term")
    assert "nightingale" not in response.text.lower()
    assert "blocked_terms" in body["message"]
    assert upstream.received("/v1/chat/completions") == []


def test_blocked_term_in_embeddings_input_is_refused(gateway, upstream):
    set_team_policy(gateway.team, blocked_terms=["project nightingale"])
    with gateway.http() as http:
        response = http.post(
            "/v1/embeddings",
            json={"model": "embed-small", "input": ["fine", "about PROJECT nightingale"]},
            headers=gateway.auth(),
        )
        allowed = http.post(
            "/v1/embeddings",
            json={"model": "embed-small", "input": "nightingales sing"},
            headers=gateway.auth(),
        )
    assert_openai_error(response, 403, "blocked_term")
    assert "nightingale" not in response.text.lower()
    assert allowed.status_code == 200


def test_max_tokens_cap_clamps_or_rejects(gateway, upstream):
    set_team_policy(gateway.team, max_tokens=64)
    assert _chat(gateway, max_tokens=4096).status_code == 200
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["max_tokens"] == 64

    set_team_policy(gateway.team, max_tokens=64, max_tokens_mode="reject")
    refused = _chat(gateway, max_tokens=4096)
    body = assert_openai_error(refused, 403, "max_tokens_exceeded")
    assert "caps max_tokens at 64" in body["message"]


def test_allowed_providers_narrow_the_candidates(gateway, upstream):
    # chat-ha has two deployments; only the backup's provider is allowed.
    set_team_policy(gateway.team, allowed_providers=["fake-backup"])
    with gateway.client() as client:
        raw = client.chat.completions.with_raw_response.create(model="chat-ha", messages=MESSAGES)
    assert raw.headers["x-gateway-provider"] == "fake-backup"
    set_team_policy(gateway.team, allowed_providers=["nowhere"])
    with gateway.client() as client, pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="chat-ha", messages=MESSAGES)
    assert "allows providers: nowhere" in caught.value.body["message"]
