"""The metrics hooks (gateway/proxy/metrics.py) alone: what each request adds, bounded labels,
hooks that never fail a request, the multiprocess directory and its system checks."""

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from gateway.checks import check_metrics
from gateway.proxy import metrics
from gateway.proxy.context import RequestContext
from gateway.proxy.errors import AuthenticationFailed, RequestTooLarge
from gateway.proxy.throttle import AuthThrottled
from routing.providers import Usage
from routing.selectors import Route
from tenants.selectors import KeyPrincipal

TEAM = "metrics-team"


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _principal() -> KeyPrincipal:
    return KeyPrincipal(
        key_id=1,
        key_prefix="sk-gw-abcdef",
        team_id=1,
        team_slug=TEAM,
        org_id=1,
        project_id=None,
        user_id=None,
        allowed_models=None,
        expires_at=None,
        revoked=False,
    )


def _route(model: str = "metrics-model") -> Route:
    return Route(
        deployment_id=1,
        model_name=model,
        upstream_model="up-model",
        mode="chat",
        provider_id=1,
        provider_name="metrics-provider",
        provider_kind="openai",
        api_base="https://api.example.invalid/v1",
        input_cost_per_mtok=Decimal("2"),
        output_cost_per_mtok=Decimal("4"),
    )


def _ctx(status: int = 200, error_type: str = "", **fields) -> RequestContext:
    ctx = RequestContext("embeddings", started=None)
    ctx.principal = _principal()
    ctx.status, ctx.error_type = status, error_type
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def test_a_settled_request_counts_tokens_cost_and_times():
    ctx = _ctx(route=_route(), usage=Usage(input_tokens=1000, output_tokens=500))
    labels = {"endpoint": "embeddings", "status_class": "2xx", "status": "200", "error_type": ""}
    before = {
        "requests": _value("gateway_requests_total", **labels),
        "input": _value("gateway_tokens_total", direction="input", model="metrics-model"),
        "output": _value("gateway_tokens_total", direction="output", model="metrics-model"),
        "cost": _value("gateway_cost_usd_total", team=TEAM, model="metrics-model"),
        "timed": _value(
            "gateway_request_duration_seconds_count", endpoint="embeddings", status_class="2xx"
        ),
    }

    metrics.request_settled(ctx)

    assert _value("gateway_requests_total", **labels) == before["requests"] + 1
    model = {"model": "metrics-model"}
    assert _value("gateway_tokens_total", direction="input", **model) == before["input"] + 1000
    assert _value("gateway_tokens_total", direction="output", **model) == before["output"] + 500
    # 1000 tokens at $2/M + 500 at $4/M
    cost = _value("gateway_cost_usd_total", team=TEAM, **model) - before["cost"]
    assert cost == pytest.approx(0.004)
    timed = _value(
        "gateway_request_duration_seconds_count", endpoint="embeddings", status_class="2xx"
    )
    assert timed == before["timed"] + 1


def test_limit_hits_and_budget_denials_are_told_apart():
    limit, budget = (
        _value("gateway_limit_hits_total", team=TEAM),
        _value("gateway_budget_denials_total", team=TEAM),
    )
    metrics.request_settled(_ctx(429, "rate_limit_exceeded"))
    metrics.request_settled(_ctx(429, "budget_exceeded"))
    metrics.request_settled(_ctx(429, "budget_exceeded"))
    metrics.request_settled(_ctx(429, "upstream_rate_limited"))  # the provider's, not ours

    assert _value("gateway_limit_hits_total", team=TEAM) == limit + 1
    assert _value("gateway_budget_denials_total", team=TEAM) == budget + 2


def test_refusals_count_auth_failures_by_reason():
    invalid = _value("gateway_auth_failures_total", reason="invalid_api_key")
    throttled = _value("gateway_auth_failures_total", reason="too_many_failed_authentications")
    too_large = _value("gateway_refusals_total", status="413", reason="request_too_large")

    metrics.request_refused(AuthenticationFailed("invalid API key"))
    metrics.request_refused(AuthThrottled("too many"))
    metrics.request_refused(RequestTooLarge("too large"))

    assert _value("gateway_auth_failures_total", reason="invalid_api_key") == invalid + 1
    reason = "too_many_failed_authentications"
    assert _value("gateway_auth_failures_total", reason=reason) == throttled + 1
    # A refusal that is no authentication failure is counted as a refusal only.
    assert _value("gateway_refusals_total", status="413", reason="request_too_large") == (
        too_large + 1
    )
    assert _value("gateway_auth_failures_total", reason="request_too_large") == 0


def test_upstream_attempt_failures_count_by_provider_and_kind():
    before = _value(
        "gateway_upstream_errors_total", provider="metrics-provider", kind="upstream_timeout"
    )
    metrics.upstream_failed(_route(), "upstream_timeout")
    metrics.upstream_failed(_route(), "upstream_timeout")
    after = _value(
        "gateway_upstream_errors_total", provider="metrics-provider", kind="upstream_timeout"
    )
    assert after == before + 2


def test_error_types_from_upstream_bodies_are_capped(monkeypatch):
    monkeypatch.setattr(metrics, "_error_types", set())
    for n in range(metrics.MAX_ERROR_TYPES + 20):
        metrics.request_settled(_ctx(400, f"made_up_code_{n}"))
    seen = {
        sample.labels["error_type"]
        for family in REGISTRY.collect()
        if family.name == "gateway_requests"
        for sample in family.samples
        if sample.labels["error_type"].startswith("made_up_code_")
    }
    assert len(seen) == metrics.MAX_ERROR_TYPES
    assert (
        _value(
            "gateway_requests_total",
            endpoint="embeddings",
            status_class="4xx",
            status="400",
            error_type=metrics.OTHER,
        )
        >= 20
    )


def test_a_failing_hook_never_fails_the_request_and_says_so_once(caplog, monkeypatch):
    monkeypatch.setattr(metrics, "_failed_once", False)
    broken = _ctx(route=_route())
    broken.usage = None  # never so in the proxy; if it were, nothing must break
    metrics.request_settled(broken)
    metrics.request_settled(broken)
    logged = [r for r in caplog.records if r.name == "gateway.metrics"]
    assert len(logged) == 1
    assert "recording metrics failed" in logged[0].getMessage()


def test_prepare_multiproc_dir_empties_only_metric_files(tmp_path, monkeypatch):
    directory = tmp_path / "metrics"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    assert metrics.prepare_multiproc_dir() == directory  # created
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "histogram_123.db").write_bytes(b"old")
    (directory / "keep.txt").write_text("not ours")

    metrics.prepare_multiproc_dir()

    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_prepare_multiproc_dir_does_nothing_without_the_variable(monkeypatch):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    assert metrics.prepare_multiproc_dir() is None


def test_several_workers_without_a_multiproc_dir_is_a_warning(settings):
    settings.WEB_CONCURRENCY = 2
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    assert [issue.id for issue in check_metrics(None)] == ["gateway.W035"]
    settings.WEB_CONCURRENCY = 1
    assert check_metrics(None) == []


def test_a_multiproc_dir_that_is_a_file_is_an_error(settings, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    settings.PROMETHEUS_MULTIPROC_DIR = str(not_a_dir)
    assert [issue.id for issue in check_metrics(None)] == ["gateway.E035"]
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    assert check_metrics(None) == []
