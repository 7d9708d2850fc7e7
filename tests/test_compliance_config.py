"""loadconfig's compliance parts: a provider's `dpa` (and sub-processor agreements), and
`compliance:` requirements on organizations and teams; their errors in the loader's style; and
a history row for every change the file makes, none for a load that changes nothing."""

import datetime

import pytest

from compliance.models import DataProcessingAgreement, RequirementSet
from gateway.config import ConfigError, config_load
from routing.models import Provider
from tenants.models import Organization, Team

CONFIG = """
providers:
  - name: openai-eu
    kind: mock
    dpa:
      status: signed          # none | in_review | signed | expired | terminated
      signed_on: 2026-01-15
      expires_on: 2027-01-15
      baa: true
      baa_expires_on: 2027-01-15
      scc: true
      zero_data_retention: false
      training_opt_out: true
      retention_days: 30
      regions: [eu]
    sub_processor_dpas:
      - {sub_processor: azure, status: signed, signed_on: "2026-02-01", regions: [eu-west]}
models:
  - {name: small, deployments: [{provider: openai-eu, model: s}]}
organizations:
  - {slug: acme, compliance: [gdpr]}
teams:
  - {slug: clinic, organization: acme, allowed_models: [small], compliance: [hipaa, zdr]}
"""


def test_the_issue_s_dpa_block_is_stored_with_every_field(db):
    config_load(text=CONFIG)
    provider = Provider.objects.get(name="openai-eu")
    dpa = DataProcessingAgreement.objects.get(provider=provider, sub_processor="")
    assert dpa.status == "signed"
    assert (dpa.signed_on, dpa.expires_on) == (
        datetime.date(2026, 1, 15),
        datetime.date(2027, 1, 15),
    )
    assert (dpa.baa, dpa.baa_expires_on, dpa.scc) == (True, datetime.date(2027, 1, 15), True)
    assert (dpa.zero_data_retention, dpa.training_opt_out, dpa.retention_days) == (
        False,
        True,
        30,
    )
    assert dpa.regions == ["eu"]
    sub = DataProcessingAgreement.objects.get(provider=provider, sub_processor="azure")
    assert (sub.status, sub.signed_on, sub.regions) == (
        "signed",
        datetime.date(2026, 2, 1),
        ["eu-west"],
    )


def test_requirements_are_stored_for_the_organization_and_the_team(db):
    config_load(text=CONFIG)
    org = Organization.objects.get(slug="acme")
    team = Team.objects.get(slug="clinic")
    assert RequirementSet.objects.get(organization=org).requirements == ["gdpr"]
    assert RequirementSet.objects.get(team=team).requirements == ["hipaa", "zdr"]


def test_loading_twice_changes_nothing_and_adds_no_history(db):
    config_load(text=CONFIG)
    agreements = DataProcessingAgreement.history.count()
    requirements = RequirementSet.history.count()
    assert (agreements, requirements) == (2, 2)
    report = config_load(text=CONFIG)
    assert report.created == report.updated == 0
    assert DataProcessingAgreement.history.count() == agreements
    assert RequirementSet.history.count() == requirements


def test_every_change_by_the_file_leaves_a_history_row_saying_so(db):
    config_load(text=CONFIG)
    changed = CONFIG.replace("expires_on: 2027-01-15", "expires_on: 2026-06-30", 1).replace(
        "compliance: [hipaa, zdr]", "compliance: [hipaa]"
    )
    report = config_load(text=changed)
    assert "updated   agreement openai-eu: expires_on datetime.date(2027, 1, 15) -> " in (
        "\n".join(report.lines)
    )
    dpa = DataProcessingAgreement.objects.get(provider__name="openai-eu", sub_processor="")
    rows = list(dpa.history.order_by("history_date"))
    assert [r.history_type for r in rows] == ["+", "~"]
    assert [r.expires_on for r in rows] == [datetime.date(2027, 1, 15), datetime.date(2026, 6, 30)]
    assert {r.history_change_reason for r in rows} == {"loadconfig"}
    team_rows = RequirementSet.objects.get(team__slug="clinic").history.order_by("history_date")
    assert [r.requirements for r in team_rows] == [["hipaa", "zdr"], ["hipaa"]]


def test_a_file_without_the_compliance_fields_leaves_them_alone(db):
    config_load(text=CONFIG)
    bare = """
providers:
  - {name: openai-eu, kind: mock}
teams:
  - {slug: clinic, organization: acme, allowed_models: [small]}
"""
    config_load(text=bare)
    assert DataProcessingAgreement.objects.get(provider__name="openai-eu", sub_processor="").baa
    assert RequirementSet.objects.get(team__slug="clinic").requirements == ["hipaa", "zdr"]
    config_load(text=bare.replace("[small]}", "[small], compliance: []}"))
    assert RequirementSet.objects.get(team__slug="clinic").requirements == []


def test_errors_name_their_item_and_field_and_nothing_is_applied(db):
    text = """
providers:
  - name: p
    kind: mock
    dpa:
      status: approved
      signed_on: 15/01/2026
      baa: "yes"
      retention_days: -1
      regions: [europe]
      colour: blue
    sub_processor_dpas:
      - {status: signed, signed_on: 2026-01-01}
organizations:
  - {slug: acme, compliance: hipaa}
teams:
  - {slug: t, compliance: [hipaa, sox]}
"""
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    errors = excinfo.value.errors
    assert "providers[0] (p).dpa.colour: unknown field (known: baa, baa_expires_on, " in (
        "\n".join(errors)
    )
    assert (
        "providers[0] (p).dpa.status: 'approved' is not one of none, in_review, signed, "
        "expired, terminated"
    ) in errors
    assert "providers[0] (p).dpa.signed_on: not a date (YYYY-MM-DD): '15/01/2026'" in errors
    assert "providers[0] (p).dpa.baa: must be true or false, not 'yes'" in errors
    assert "providers[0] (p).dpa.retention_days: must be >= 0" in errors
    assert "providers[0] (p).sub_processor_dpas[0].sub_processor: missing (required)" in errors
    assert (
        "organizations[0] (acme).compliance: a list of requirement names "
        "(gdpr, hipaa, zdr, no_training)"
    ) in errors
    assert (
        "teams[0] (t).compliance: unknown requirement 'sox': use gdpr, hipaa, zdr, no_training"
    ) in errors
    assert not Provider.objects.exists()
    assert not DataProcessingAgreement.history.exists()


def test_a_region_outside_the_vocabulary_and_inconsistent_dates_are_refused(db):
    text = """
providers:
  - name: p
    kind: mock
    dpa: {status: signed, signed_on: 2026-01-15, expires_on: 2025-01-15, regions: [europe]}
"""
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    errors = excinfo.value.errors
    assert any(
        e.startswith("providers[0] (p).dpa.regions: 'europe' is not one of eu,") for e in errors
    )
    assert "providers[0] (p).dpa.expires_on: must be after signed_on" in errors
    assert not DataProcessingAgreement.objects.exists()
