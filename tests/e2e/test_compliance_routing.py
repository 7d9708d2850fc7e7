"""Routing obeys the compliance registry, end to end: for each requirement a team is refused
(403 compliance_denied, logged as a policy denial) when no compliant deployment exists and is
served when one does, however cheap the non-compliant one is; a fallback group never reaches a
non-compliant provider; an agreement that lapses is obeyed within the refresh time; and the
usage row records which agreement allowed the call."""

import datetime
import time

import pytest
from django.conf import settings
from django.utils import timezone

from compliance.models import DataProcessingAgreement, RequirementSet
from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team

from .support import TEAM, assert_openai_error, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

# Providers on the fake upstream, each with the agreement that makes it what its name says.
PROVIDERS = """
providers:
  - name: baa-eu
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    region: eu-west
    dpa: {{status: signed, signed_on: 2026-01-15, baa: true, zero_data_retention: true,
           training_opt_out: true, regions: [eu]}}
  - name: scc-us
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    region: us-east
    dpa: {{status: signed, signed_on: 2026-01-15, scc: true, training_opt_out: true}}
  - name: plain-us
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    region: us-east
    dpa: {{status: signed, signed_on: 2026-01-15}}
  - {{name: no-dpa, kind: openai_compatible, api_base: "{base}", api_key: "{secret}",
      region: eu-west}}
"""
# requirement -> (a provider that meets it, one that does not), the latter always cheaper.
CASES = {
    "hipaa": ("baa-eu", "scc-us"),
    "gdpr": ("scc-us", "plain-us"),
    "zdr": ("baa-eu", "scc-us"),
    "no_training": ("scc-us", "plain-us"),
}
MISSING = {
    "hipaa": "a signed, unexpired BAA",
    "gdpr": "a signed, unexpired DPA covering its region (with SCCs outside eu/uk/on-prem)",
    "zdr": "a signed, unexpired DPA with zero data retention",
    "no_training": "a signed, unexpired DPA with a training opt-out",
}
MESSAGES = [{"role": "user", "content": "Say hello."}]


def _models() -> str:
    """Per requirement R (good/bad: CASES[R]):
    R-mixed     bad (cheap) and good (dear): the good one serves
    R-bad       bad only: refused
    R-fallback  bad only, falling back to R-good: the fallback serves
    R-good      good only, falling back to R-bad: a failure never reaches bad
    """
    lines = ["models:"]
    for req, (good, bad) in CASES.items():
        bad_dep = f"{{provider: {bad}, model: {req}-bad-model, input_cost_per_mtok: 0.1}}"
        good_dep = f"{{provider: {good}, model: {req}-good-model, input_cost_per_mtok: 5}}"
        lines += [
            f"  - {{name: {req}-mixed, deployments: [{bad_dep}, "
            f"{{provider: {good}, model: {req}-mixed-good, input_cost_per_mtok: 5}}]}}",
            f"  - {{name: {req}-bad, deployments: [{bad_dep}]}}",
            f"  - {{name: {req}-fallback, fallbacks: [{req}-good], deployments: "
            f"[{{provider: {bad}, model: {req}-fb-bad, input_cost_per_mtok: 0.1}}]}}",
            f"  - {{name: {req}-good, fallbacks: [{req}-bad], deployments: [{good_dep}]}}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def setup(gateway, upstream):
    from .support import PROVIDER_SECRET

    config_load(text=PROVIDERS.format(base=upstream.base_url, secret=PROVIDER_SECRET) + _models())
    team = Team.objects.get(slug=TEAM)
    Team.objects.filter(pk=team.pk).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return gateway, gateway.issue_key(name="compliance"), team


def _require(team, *names) -> None:
    found, _ = RequirementSet.objects.get_or_create(team=team)
    found.requirements = list(names)
    found.save()  # drops this process's compliance table on commit


def _chat(gateway, key, model):
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES},
            headers=gateway.auth(key),
        )


def _sent(upstream) -> list[str]:
    return [r.body["model"] for r in upstream.received("/v1/chat/completions")]


def _agreement(provider: str) -> DataProcessingAgreement:
    return DataProcessingAgreement.objects.get(provider__name=provider, sub_processor="")


@pytest.mark.parametrize("requirement", list(CASES))
def test_refused_when_no_deployment_complies(setup, upstream, requirement):
    gateway, key, team = setup
    _require(team, requirement)
    response = _chat(gateway, key, f"{requirement}-bad")
    error = assert_openai_error(response, 403, "compliance_denied")
    assert error["type"] == "permission_error"
    assert error["message"] == (
        f"team '{TEAM}' requires {requirement}: no deployment of '{requirement}-bad' has a "
        f"provider with {MISSING[requirement]}"
    )
    assert _sent(upstream) == []
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.error_type) == (403, "compliance_denied")
    assert (record.provider_name, record.compliance_basis) == ("", "")


@pytest.mark.parametrize("requirement", list(CASES))
def test_served_by_the_compliant_deployment_never_the_cheaper_other(setup, upstream, requirement):
    gateway, key, team = setup
    good, _ = CASES[requirement]
    _require(team, requirement)
    response = _chat(gateway, key, f"{requirement}-mixed")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == good
    assert _sent(upstream) == [f"{requirement}-mixed-good"]
    [record] = wait_for_usage_records(1)
    assert record.compliance_basis == f"dpa:{_agreement(good).pk} {good} ({requirement})"


def test_without_requirements_the_cheapest_serves_and_no_basis_is_recorded(setup, upstream):
    gateway, key, _ = setup
    response = _chat(gateway, key, "hipaa-mixed")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "scc-us"
    [record] = wait_for_usage_records(1)
    assert record.compliance_basis == ""


@pytest.mark.parametrize("requirement", list(CASES))
def test_a_non_compliant_group_is_skipped_for_its_fallback(setup, upstream, requirement):
    gateway, key, team = setup
    good, _ = CASES[requirement]
    _require(team, requirement)
    response = _chat(gateway, key, f"{requirement}-fallback")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == good
    # The group's own deployment was never tried: not a failed attempt, not a call.
    assert _sent(upstream) == [f"{requirement}-good-model"]
    assert "x-gateway-fallbacks" not in response.headers


@pytest.mark.parametrize("requirement", list(CASES))
def test_a_fallback_never_escapes_to_a_non_compliant_provider(setup, upstream, requirement):
    gateway, key, team = setup
    _require(team, requirement)
    upstream.fail(500, model=f"{requirement}-good-model")
    response = _chat(gateway, key, f"{requirement}-good")
    assert_openai_error(response, 502, "upstream_error")
    assert f"{requirement}-bad-model" not in _sent(upstream)
    # Without the requirement the same failure does fall back there.
    _require(team)
    response = _chat(gateway, key, f"{requirement}-good")
    assert response.status_code == 200, response.text
    assert _sent(upstream)[-1] == f"{requirement}-bad-model"


def test_an_organization_s_requirement_binds_its_team(setup, upstream):
    gateway, key, team = setup
    RequirementSet.objects.create(organization=team.organization, requirements=["hipaa"])
    error = assert_openai_error(_chat(gateway, key, "hipaa-bad"), 403, "compliance_denied")
    assert "requires hipaa (set by its organization)" in error["message"]


def test_a_lapsed_agreement_is_obeyed_within_the_refresh_time(setup, upstream, settings):
    """The change is written around the signals (as another process would), so nothing tells
    this process: the table's refresh must pick it up, with no restart."""
    settings.GATEWAY_ROUTING_CACHE_TTL_S = 1.0
    gateway, key, team = setup
    _require(team, "hipaa")
    assert _chat(gateway, key, "hipaa-good").status_code == 200
    today = timezone.localdate()
    changed = DataProcessingAgreement.objects.filter(provider__name="baa-eu").update(
        baa_expires_on=today
    )
    assert changed == 1
    started = time.monotonic()
    while True:
        response = _chat(gateway, key, "hipaa-good")
        if response.status_code != 200:
            break
        assert time.monotonic() - started < 3.0, "still served long after the refresh time"
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert_openai_error(response, 403, "compliance_denied")
    assert elapsed <= settings.GATEWAY_ROUTING_CACHE_TTL_S + 0.5


def test_an_agreement_set_to_expired_in_the_admin_way_applies_at_once(setup, upstream):
    gateway, key, team = setup
    _require(team, "zdr")
    assert _chat(gateway, key, "zdr-good").status_code == 200
    agreement = _agreement("baa-eu")
    agreement.status = DataProcessingAgreement.Status.EXPIRED
    agreement.save()
    assert_openai_error(_chat(gateway, key, "zdr-good"), 403, "compliance_denied")
    assert agreement.history.latest().status == "expired"
    # And signed again, with an expiry still ahead.
    agreement.status = DataProcessingAgreement.Status.SIGNED
    agreement.expires_on = timezone.localdate() + datetime.timedelta(days=1)
    agreement.save()
    assert _chat(gateway, key, "zdr-good").status_code == 200
    assert agreement.history.count() == 3


def test_embeddings_obey_the_requirements_too(setup, upstream):
    gateway, key, team = setup
    config_load(
        text="""
models:
  - name: embed-us
    mode: embedding
    deployments: [{provider: plain-us, model: embed-us-model}]
  - name: embed-eu
    mode: embedding
    fallbacks: [embed-us]
    deployments: [{provider: baa-eu, model: embed-eu-model}]
"""
    )
    routing_table_cache.invalidate()
    _require(team, "hipaa")
    with gateway.http() as http:
        refused = http.post(
            "/v1/embeddings",
            json={"model": "embed-us", "input": "hello"},
            headers=gateway.auth(key),
        )
        upstream.fail(500, model="embed-eu-model")
        failed = http.post(
            "/v1/embeddings",
            json={"model": "embed-eu", "input": "hello"},
            headers=gateway.auth(key),
        )
    error = assert_openai_error(refused, 403, "compliance_denied")
    assert (
        "no deployment of 'embed-us' has a provider with a signed, unexpired BAA"
        in (error["message"])
    )
    assert_openai_error(failed, 502, "upstream_error")
    sent = {r.body["model"] for r in upstream.received("/v1/embeddings")}
    assert sent == {"embed-eu-model"}  # tried (and retried), never the US fallback
