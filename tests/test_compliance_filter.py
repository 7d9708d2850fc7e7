"""The compliance filter on routes (compliance/snapshot.py): what each requirement asks of a
provider's agreements, the SCC rule by the deployment's region, sub-processor agreements,
expiry by the clock (no rebuild), and nothing at all for a team that requires nothing."""

import datetime
import time

import pytest
from django.utils import timezone

from compliance.models import RequirementSet
from compliance.snapshot import compliance_table_build, day_start
from routing.selectors import routing_table_build
from tenants.selectors import KeyPrincipal

from .factories import AgreementFactory, DeploymentFactory, ProviderFactory, TeamFactory

TODAY = timezone.localdate()
NEXT_YEAR = TODAY + datetime.timedelta(days=365)
LAST_YEAR = TODAY - datetime.timedelta(days=365)


def principal(team) -> KeyPrincipal:
    return KeyPrincipal(
        key_id=1,
        key_prefix="gw-abc",
        team_id=team.pk,
        team_slug=team.slug,
        org_id=team.organization_id,
        project_id=None,
        user_id=None,
        allowed_models=None,
        expires_at=None,
        revoked=False,
        key_name="k",
        team_models=None,
    )


def require(team, *names):
    RequirementSet.objects.create(team=team, requirements=list(names))


def deployment(name: str, region: str = "eu-west", *, agreement: bool = True, **terms):
    """A provider serving 'small' and, unless agreement=False, its agreement (signed a year
    ago, no expiry, with `terms`)."""
    provider = ProviderFactory(name=name, region=region)
    DeploymentFactory(provider=provider, model_name="small", upstream_model=f"{name}-model")
    if agreement:
        return AgreementFactory(provider=provider, signed_on=LAST_YEAR, **terms)
    return None


def served(team, now: float | None = None) -> list[str]:
    """The providers of 'small' the team's gate keeps."""
    routes = routing_table_build().candidates("chat", "small")
    gate = compliance_table_build().gate(principal(team))
    return sorted(r.provider_name for r in gate.narrow(routes, now))


def denial(team) -> str:
    routes = routing_table_build().candidates("chat", "small")
    return compliance_table_build().gate(principal(team)).denial("small", routes)


@pytest.fixture
def team(db):
    return TeamFactory(slug="clinic")


def test_a_team_without_requirements_gets_no_gate(team):
    deployment("anything", agreement=False)
    assert compliance_table_build().gate(principal(team)) is None


def test_hipaa_needs_a_baa_that_has_not_expired(team):
    require(team, "hipaa")
    deployment("with-baa", baa=True, baa_expires_on=NEXT_YEAR)
    deployment("lapsed-baa", baa=True, baa_expires_on=TODAY)
    deployment("no-baa", zero_data_retention=True, training_opt_out=True, scc=True)
    deployment("terminated", status="terminated", baa=True)
    deployment("no-agreement", agreement=False)
    assert served(team) == ["with-baa"]


def test_hipaa_refusal_names_the_requirement_and_the_missing_baa(team):
    require(team, "hipaa")
    deployment("no-baa")
    assert denial(team) == (
        "team 'clinic' requires hipaa: no deployment of 'small' has a provider with a "
        "signed, unexpired BAA"
    )


def test_zdr_and_no_training_need_their_flags_on_a_signed_unexpired_dpa(team):
    require(team, "zdr", "no_training")
    deployment("both", zero_data_retention=True, training_opt_out=True)
    deployment("zdr-only", zero_data_retention=True)
    deployment("expired", zero_data_retention=True, training_opt_out=True, expires_on=TODAY)
    deployment("in-review", status="in_review", zero_data_retention=True, training_opt_out=True)
    assert served(team) == ["both"]


def test_no_training_refusal_names_the_opt_out(team):
    require(team, "no_training")
    deployment("trains", zero_data_retention=True)
    assert denial(team).endswith(
        "has a provider with a signed, unexpired DPA with a training opt-out"
    )


def test_gdpr_needs_sccs_only_outside_the_eu_uk_and_on_prem(team):
    require(team, "gdpr")
    deployment("eu-plain", region="eu-central")
    deployment("uk-plain", region="eu-west-2")  # AWS London: uk-south
    deployment("on-prem-plain", region="on-prem")
    deployment("us-plain", region="us-east")
    deployment("us-scc", region="us-east", scc=True)
    deployment("eu-unsigned", region="eu-west", status="in_review", scc=True)
    assert served(team) == ["eu-plain", "on-prem-plain", "uk-plain", "us-scc"]


def test_gdpr_needs_the_deployment_inside_the_agreement_s_regions(team):
    require(team, "gdpr")
    deployment("covered", region="eu-west", regions=["eu"])
    deployment("outside", region="us-east", scc=True, regions=["eu"])
    deployment("anywhere", region="us-east", scc=True)
    assert served(team) == ["anywhere", "covered"]


def test_a_sub_processor_agreement_must_hold_too(team):
    require(team, "zdr")
    deployment("clean", zero_data_retention=True)
    agreement = deployment("with-sub", zero_data_retention=True)
    AgreementFactory(
        provider=agreement.provider, sub_processor="hosting", zero_data_retention=False
    )
    assert served(team) == ["clean"]


def test_an_organization_s_requirement_applies_to_its_teams_and_says_so(team):
    RequirementSet.objects.create(organization=team.organization, requirements=["hipaa"])
    deployment("no-baa")
    assert denial(team) == (
        "team 'clinic' requires hipaa (set by its organization): no deployment of 'small' "
        "has a provider with a signed, unexpired BAA"
    )


def test_requirements_of_team_and_organization_add_up(team):
    RequirementSet.objects.create(organization=team.organization, requirements=["hipaa"])
    require(team, "zdr")
    deployment("baa-only", baa=True)
    deployment("zdr-only", zero_data_retention=True)
    deployment("both", baa=True, zero_data_retention=True)
    assert served(team) == ["both"]


def test_no_single_provider_meeting_all_requirements_is_said_so(team):
    require(team, "hipaa", "zdr")
    deployment("baa-only", baa=True)
    deployment("zdr-only", zero_data_retention=True)
    assert denial(team) == (
        "team 'clinic' requires hipaa, zdr: no deployment of 'small' has a provider that "
        "meets them all"
    )


def test_an_expiry_takes_effect_at_its_time_without_a_rebuild(team):
    require(team, "hipaa")
    ends = TODAY + datetime.timedelta(days=3)
    deployment("ending", baa=True, baa_expires_on=ends)
    deadline = day_start(ends)
    assert served(team, now=deadline - 1) == ["ending"]
    assert served(team, now=deadline) == []
    assert deadline == datetime.datetime.combine(ends, datetime.time.min, datetime.UTC).timestamp()
    assert time.time() < deadline


def test_the_allowed_route_carries_its_basis_and_the_table_keeps_none(team):
    require(team, "hipaa", "gdpr")
    agreement = deployment("good", baa=True)
    routes = routing_table_build().candidates("chat", "small")
    [kept] = compliance_table_build().gate(principal(team)).narrow(routes)
    assert kept.compliance_basis == f"dpa:{agreement.pk} good (gdpr, hipaa)"
    assert routes[0].compliance_basis == ""
    assert kept.deployment_id == routes[0].deployment_id
