"""GET /metrics on the gateway under test (one process: its own registry): who may read it, and
counters that move by exactly the traffic sent."""

import pytest
from django.conf import settings as django_settings

from policies.models import Policy
from policies.snapshot import policy_table_cache
from routing import health
from routing.selectors import routing_table_build
from tenants.services import api_key_issue
from tests.helpers_metrics import parse, scrape

from .support import MESSAGES, TEAM, expected_cost, wait_for_usage_records

TOKEN = "metrics-test-token-0123456789"
REMOTE = "203.0.113.7"  # TEST-NET-3: an address that is not loopback


def _get(gateway, **headers):
    with gateway.http() as http:
        return http.get("/metrics", headers=headers)


def test_with_a_token_the_token_is_required(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = TOKEN

    missing = _get(gateway)
    wrong = _get(gateway, authorization="Bearer not-the-token")
    other_scheme = _get(gateway, authorization=f"Basic {TOKEN}")
    right = _get(gateway, authorization=f"Bearer {TOKEN}")

    for refused in (missing, wrong, other_scheme):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "gateway_" not in refused.text
    assert right.status_code == 200
    assert "# TYPE gateway_requests_total counter" in right.text


def test_without_a_token_loopback_clients_may_read(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    response = _get(gateway)
    assert response.status_code == 200
    assert "gateway_requests_total" in response.text


def test_without_a_token_a_remote_client_gets_404(gateway, settings):
    # The test client connects from 127.0.0.1; as a trusted proxy it vouches for a remote
    # client, which is who the gateway then sees.
    settings.GATEWAY_METRICS_TOKEN = ""
    settings.GATEWAY_TRUSTED_PROXIES = ["127.0.0.1/32"]

    remote = _get(gateway, **{"x-forwarded-for": REMOTE})
    local = _get(gateway, **{"x-forwarded-for": "127.0.0.1"})

    assert remote.status_code == 404
    assert "gateway_" not in remote.text
    assert local.status_code == 200


def test_a_token_is_required_from_loopback_too(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = TOKEN
    assert _get(gateway).status_code == 401


def test_an_untrusted_forwarded_for_does_not_make_a_client_remote_or_local(gateway, settings):
    # Without trusted proxies the header is the client's own word: ignored, the peer counts.
    settings.GATEWAY_METRICS_TOKEN = ""
    settings.GATEWAY_TRUSTED_PROXIES = []
    assert _get(gateway, **{"x-forwarded-for": REMOTE}).status_code == 200


def _chat(gateway, key: str, model: str = "chat-fast"):
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": MESSAGES},
        )


def test_counters_move_by_the_traffic_sent(gateway, upstream, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    limited = api_key_issue(team=gateway.team, name="limited")
    Policy.objects.create(api_key=limited.api_key, rpm=1)
    policy_table_cache.invalidate()
    before = scrape(gateway.url)

    ok = [_chat(gateway, gateway.key) for _ in range(3)]
    first, refused = _chat(gateway, limited.secret), _chat(gateway, limited.secret)
    upstream.fail(500, times=1, model="fake-chat-primary")
    recovered = _chat(gateway, gateway.key, model="chat-ha")
    bad_key = _chat(gateway, "sk-gw-" + "x" * 40)
    wait_for_usage_records(6)
    after = scrape(gateway.url)

    assert [r.status_code for r in ok] == [200, 200, 200]
    assert (first.status_code, refused.status_code) == (200, 429)
    assert recovered.status_code == 200
    assert bad_key.status_code == 401

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    chat = {"endpoint": "chat.completions"}
    assert delta("gateway_requests_total", status="200", error_type="", **chat) == 5
    assert delta("gateway_requests_total", status_class="2xx", **chat) == 5
    assert delta("gateway_requests_total", status="429", error_type="rate_limit_exceeded") == 1
    assert delta("gateway_limit_hits_total", team=TEAM) == 1
    assert delta("gateway_budget_denials_total") == 0
    # Unauthenticated: no usage row, so no request count, but a refusal and an auth failure.
    assert delta("gateway_requests_total", status="401") == 0
    assert delta("gateway_auth_failures_total", reason="invalid_api_key") == 1
    assert delta("gateway_refusals_total", status="401", reason="invalid_api_key") == 1
    # Every settled request is timed once.
    assert delta("gateway_request_duration_seconds_count", **chat) == 6
    assert delta("gateway_overhead_seconds_count", **chat) == 6
    assert delta("gateway_overhead_seconds_sum", **chat) > 0

    # One failed attempt per entry of the fallbacks header, by provider and error kind.
    failed = recovered.headers["x-gateway-fallbacks"].split("; ")
    assert failed
    for entry in set(failed):
        label, kind = entry.split(": ")
        provider = label.split("/")[0]
        assert delta("gateway_upstream_errors_total", provider=provider, kind=kind) == (
            failed.count(entry)
        )
    assert delta("gateway_upstream_errors_total") == len(failed)

    p, c = upstream.prompt_tokens, upstream.completion_tokens
    assert delta("gateway_tokens_total", direction="input", model="chat-fast") == 4 * p
    assert delta("gateway_tokens_total", direction="output", model="chat-fast") == 4 * c
    assert delta("gateway_tokens_total", direction="input", model="chat-ha") == p
    fast_cost = float(4 * expected_cost("fake-chat-fast", p, c))
    assert delta("gateway_cost_usd_total", team=TEAM, model="chat-fast") == pytest.approx(fast_cost)
    served_by = recovered.headers["x-gateway-deployment"].split("/")[1]
    assert delta("gateway_cost_usd_total", team=TEAM, model="chat-ha") == pytest.approx(
        float(expected_cost(served_by, p, c))
    )


def test_breaker_states_are_read_from_the_shared_health_state(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    down = routing_table_build().candidates("chat", "chat-down")[0]
    for _ in range(50):
        found = health.report_sync(down, health.FAIL)
        if found is not None and found.state == health.OPEN:
            break
    assert found.state == health.OPEN

    # Another process opened it (report_sync is the health check's path): this process's
    # health cache knows nothing of it, yet the scrape does.
    found = scrape(gateway.url)

    def state(deployment: str, name: str) -> float:
        return found.value("gateway_breaker_state", deployment=deployment, state=name)

    assert state("closed-port/fake-chat-down", "open") == 1
    assert state("closed-port/fake-chat-down", "closed") == 0
    assert state("fake-primary/fake-chat-fast", "closed") == 1
    assert found.value("gateway_breaker_state", deployment="fake-primary/fake-chat-fast") == 1
    labels = next(lab for n, lab, _ in found.samples if n == "gateway_breaker_state")
    assert set(labels) == {"deployment", "provider", "model", "state"}


def test_the_exposition_parses_and_declares_every_metric(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    with gateway.http() as http:
        text = http.get("/metrics").text
    families = parse(text).families
    for name, kind in {
        "gateway_requests": "counter",
        "gateway_tokens": "counter",
        "gateway_cost_usd": "counter",
        "gateway_request_duration_seconds": "histogram",
        "gateway_overhead_seconds": "histogram",
        "gateway_upstream_errors": "counter",
        "gateway_limit_hits": "counter",
        "gateway_budget_denials": "counter",
        "gateway_auth_failures": "counter",
        "gateway_refusals": "counter",
        "gateway_breaker_state": "gauge",
    }.items():
        assert families.get(name) == kind, name
    assert django_settings.PROMETHEUS_MULTIPROC_DIR == ""  # this run: one process's registry
