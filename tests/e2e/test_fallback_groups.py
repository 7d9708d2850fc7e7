"""Fallback groups end to end (gateway/proxy/chain.py): `fallbacks` after the group's own
deployments, `context_fallbacks` for prompts too long for it (our estimate, or the provider's
context-length error), residency that holds on fallback, and the latency strategy following
changed latencies."""

import pytest
from django.conf import settings

from gateway.config import config_load
from policies.models import Policy
from policies.snapshot import policy_table_cache
from tenants.models import Team

from .support import MESSAGES, PROVIDER_SECRET, TEAM, assert_openai_error, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

GROUPS = """
providers:
  - {{name: eu-one, kind: openai_compatible, api_base: "{base}", api_key: "{secret}",
      region: eu-west}}
  - {{name: us-one, kind: openai_compatible, api_base: "{base}", api_key: "{secret}",
      region: us-east}}
  - {{name: other-eu, kind: openai_compatible, api_base: "{other}", api_key: "{secret}",
      region: eu-central}}
models:
  - name: main
    fallbacks: [backup-eu, backup-us]
    context_fallbacks: [long]
    deployments:
      - {{provider: eu-one, model: main-eu, context_window: 60}}
  - name: backup-eu
    deployments: [{{provider: eu-one, model: backup-eu-model}}]
  - name: backup-us
    deployments: [{{provider: us-one, model: backup-us-model}}]
  - name: long
    deployments: [{{provider: eu-one, model: long-model, context_window: 100000}}]
  - name: quick
    strategy: latency
    deployments:
      - {{provider: eu-one, model: quick-here}}
      - {{provider: other-eu, model: quick-there}}
teams:
  - slug: {team}
    allowed_models: [main, backup-eu, backup-us, long, quick]
"""


@pytest.fixture
def groups(gateway, upstream, flaky, settings):
    settings.GATEWAY_HEALTH_CACHE_S = 0  # every request reads the latest latencies
    settings.GATEWAY_UPSTREAM_RETRIES = 0  # one attempt per deployment: counted exactly
    config_load(
        text=GROUPS.format(
            base=upstream.base_url, other=flaky.base_url, secret=PROVIDER_SECRET, team=TEAM
        )
    )
    return gateway


def _chat(gw, model: str, messages=MESSAGES):
    with gw.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": messages},
            headers=gw.auth(),
        )


def _sent(fake) -> list[str]:
    return [r.body["model"] for r in fake.received("/v1/chat/completions")]


def test_a_failing_group_falls_back_to_its_fallback_groups_in_order(groups, upstream):
    upstream.fail(500, model="main-eu")
    upstream.fail(500, model="backup-eu-model")
    response = _chat(groups, "main")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "us-one/backup-us-model"
    assert response.headers["x-gateway-fallbacks"] == (
        "eu-one/main-eu: upstream_error; eu-one/backup-eu-model: upstream_error"
    )
    assert response.headers["x-gateway-region"] == "us-east"
    assert _sent(upstream) == ["main-eu", "backup-eu-model", "backup-us-model"]
    [record] = wait_for_usage_records(1)
    assert (record.upstream_model, record.attempts, record.region) == (
        "backup-us-model",
        3,
        "us-east",
    )


def test_residency_holds_on_fallback(groups, upstream):
    Policy.objects.create(team=Team.objects.get(slug=TEAM), allowed_regions=["eu"])
    policy_table_cache.invalidate()
    upstream.fail(500, model="main-eu")
    upstream.fail(500, model="backup-eu-model")
    response = _chat(groups, "main")
    # Every in-region deployment failed: an error, never a call to the US fallback.
    assert_openai_error(response, 502, "upstream_error")
    assert "backup-us-model" not in _sent(upstream)
    assert _sent(upstream) == ["main-eu", "backup-eu-model"]


def test_a_prompt_too_long_for_the_group_goes_to_its_context_fallback(groups, upstream):
    long_prompt = [{"role": "user", "content": "word " * 200}]  # about 250 tokens > 60
    response = _chat(groups, "main", long_prompt)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "eu-one/long-model"
    assert _sent(upstream) == ["long-model"]


def test_a_provider_context_length_error_goes_to_the_context_fallback(groups, upstream):
    upstream.fail(400, model="main-eu", code="context_length_exceeded", param="messages")
    response = _chat(groups, "main")
    assert response.status_code == 200, response.text
    assert _sent(upstream) == ["main-eu", "long-model"]
    assert response.headers["x-gateway-deployment"] == "eu-one/long-model"


def test_the_latency_strategy_follows_changed_latencies(groups, upstream, flaky):
    flaky.delay_s = 0.1
    # Each deployment is measured once (unmeasured ones go first), then the faster one serves.
    served = [_chat(groups, "quick").headers["x-gateway-deployment"] for _ in range(5)]
    assert served[-3:] == ["eu-one/quick-here"] * 3
    assert _chat(groups, "quick").headers["x-gateway-route-strategy"] == "latency"
    # Now the other one is the fast one.
    flaky.delay_s, upstream.delay_s = 0.0, 0.4
    served = [_chat(groups, "quick").headers["x-gateway-deployment"] for _ in range(4)]
    assert served[-2:] == ["other-eu/quick-there"] * 2


def test_nothing_healthy_in_region_is_a_503_that_says_so(groups, upstream, settings):
    settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES = 1
    Policy.objects.create(team=Team.objects.get(slug=TEAM), allowed_regions=["eu"])
    policy_table_cache.invalidate()
    upstream.fail(500)
    _chat(groups, "main")  # opens the breakers of main-eu and of both eu fallbacks
    response = _chat(groups, "main")
    error = assert_openai_error(response, 503, "no_healthy_deployment")
    assert "within the allowed regions" in error["message"]
    assert "backup-us-model" not in _sent(upstream)
