"""loadconfig's `organizations:`, `policy:` and `model_limits:` blocks: what they write, how a
second run changes nothing, what an omitted block does, and every error at its path."""

from decimal import Decimal

import pytest

from gateway.config import ConfigError, config_load
from policies.models import ModelLimit, Policy
from tenants.models import Organization

from .helpers_config import config_rows

pytestmark = pytest.mark.django_db

HEAD = """
providers:
  - {name: openai-eu, kind: mock}
models:
  - name: small
    deployments: [{provider: openai-eu, model: s}]
  - name: large
    deployments: [{provider: openai-eu, model: l}]
"""

FULL = (
    HEAD
    + """
organizations:
  - slug: acme
    name: ACME
    timezone: Europe/Paris
    policy: {monthly_budget_usd: 1000, user_rpm: 30, privacy_mode: hashed}
    model_limits:
      large: {rpm: 300}
teams:
  - slug: search
    organization: acme
    allowed_models: [small, large]
    policy:
      allowed_models: [small]
      monthly_budget_usd: 50
      budget_mode: soft
      budget_clamp: true
      rpm: 600
      tpm: 200000
      user_rpm: 10
      user_tpm: 5000
      max_tokens: 4096
      max_tokens_mode: reject
      allowed_features: [tools, streaming]
      blocked_terms: [project falcon]
      allowed_providers: [openai-eu]
      allowed_regions: [eu]
      privacy_mode: redacted
      alert_thresholds: [50, 80, 100]
      alert_emails: [leads@example.com]
      alert_webhook_url: https://hooks.example.com/${HOOK_TOKEN}
    model_limits:
      small: {rpm: 100, tpm: 50000}
    projects:
      - slug: web
        policy: {rpm: 100, monthly_budget_usd: 20}
"""
)


@pytest.fixture(autouse=True)
def _hook_token(monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "t0ken-in-the-environment")


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    return caught.value.errors


def test_every_policy_field_is_written():
    report = config_load(text=FULL)

    org = Organization.objects.get(slug="acme")
    assert (org.name, org.timezone) == ("ACME", "Europe/Paris")
    org_policy = Policy.objects.get(organization=org)
    assert (org_policy.monthly_budget_usd, org_policy.user_rpm) == (Decimal(1000), 30)
    team = Policy.objects.get(team__slug="search")
    assert team.allowed_models == ["small"]
    assert (team.monthly_budget_usd, team.budget_mode, team.budget_clamp) == (50, "soft", True)
    assert (team.rpm, team.tpm, team.user_rpm, team.user_tpm) == (600, 200000, 10, 5000)
    assert (team.max_tokens, team.max_tokens_mode) == (4096, "reject")
    assert team.allowed_features == ["tools", "streaming"]
    assert team.blocked_terms == ["project falcon"]
    assert (team.allowed_providers, team.allowed_regions) == (["openai-eu"], ["eu"])
    assert team.privacy_mode == "redacted"
    assert (team.alert_thresholds, team.alert_emails) == ([50, 80, 100], ["leads@example.com"])
    assert team.alert_webhook_url == "https://hooks.example.com/t0ken-in-the-environment"
    assert "t0ken" not in team.alert_webhook_encrypted
    project = Policy.objects.get(project__slug="web")
    assert (project.rpm, project.monthly_budget_usd) == (100, 20)
    limits = {
        (m.organization_id, m.team_id, m.model): (m.rpm, m.tpm) for m in ModelLimit.objects.all()
    }
    assert limits == {
        (org.pk, None, "large"): (300, None),
        (None, team.team_id, "small"): (100, 50000),
    }
    assert "created   policy of team search" in report.lines
    assert "created   model limit small in team search" in report.lines
    assert "created   policy of project search/web" in report.lines
    assert not any("t0ken" in line for line in report.lines)


def test_a_second_run_changes_nothing():
    config_load(text=FULL)
    before = [*config_rows(), list(Policy.objects.values()), list(ModelLimit.objects.values())]

    report = config_load(text=FULL)

    assert (report.created, report.updated) == (0, 0)
    after = [*config_rows(), list(Policy.objects.values()), list(ModelLimit.objects.values())]
    assert after == before  # the encrypted webhook was not rewritten either


def test_a_changed_value_is_reported_and_a_webhook_by_name_only(monkeypatch):
    config_load(text=FULL)
    monkeypatch.setenv("HOOK_TOKEN", "another-t0ken")

    report = config_load(text=FULL.replace("rpm: 600", "rpm: 500"))

    [line] = [line for line in report.lines if "policy of team search" in line]
    assert "rpm 600 -> 500" in line
    assert "alert_webhook_url" in line and "t0ken" not in line
    assert Policy.objects.get(team__slug="search").alert_webhook_url.endswith("another-t0ken")


def test_an_omitted_policy_block_keeps_the_policy_and_a_given_one_is_whole():
    config_load(text=FULL)
    without = HEAD + "teams:\n  - {slug: search, organization: acme, allowed_models: [small]}\n"

    config_load(text=without)
    assert Policy.objects.get(team__slug="search").rpm == 600  # left alone

    config_load(text=without.replace("allowed_models: [small]}", "policy: {tpm: 10}}"))
    policy = Policy.objects.get(team__slug="search")
    # The block is the whole policy: what it leaves out is back to its default.
    assert (policy.tpm, policy.rpm, policy.monthly_budget_usd, policy.blocked_terms) == (
        10,
        None,
        None,
        [],
    )
    assert ModelLimit.objects.filter(team__slug="search").exists()  # never deleted


def test_an_organization_listed_and_named_by_teams_is_counted_once():
    report = config_load(text=FULL)

    assert report.lines.count("created   organization acme") == 1


def test_a_project_above_its_teams_limits_is_refused_at_its_path():
    text = FULL.replace("policy: {rpm: 100, monthly_budget_usd: 20}", "policy: {rpm: 601}")

    errors = _errors(text)

    assert errors == [
        "teams[0] (search).projects[0] (web).policy.rpm: may not exceed 600, set by team "
        "'search' (a key's or project's limit can only narrow its team's)"
    ]
    assert not Policy.objects.exists()


def test_a_project_is_held_to_the_organizations_limits_when_its_team_sets_none():
    text = (
        HEAD
        + """
organizations:
  - {slug: acme, policy: {monthly_budget_usd: 10}}
teams:
  - slug: search
    organization: acme
    projects:
      - {slug: web, policy: {monthly_budget_usd: 11}}
"""
    )

    [error] = _errors(text)

    assert "policy.monthly_budget_usd: may not exceed $10.00, set by organization 'acme'" in error


P = "teams[0] (search).policy"


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        ("{budget_mode: hrd}", f"{P}.budget_mode: 'hrd' is not one of hard, soft"),
        ("{max_tokens_mode: cut}", f"{P}.max_tokens_mode: 'cut' is not one of clamp, reject"),
        (
            "{privacy_mode: all}",
            f"{P}.privacy_mode: 'all' is not one of metadata, hashed, redacted, full",
        ),
        ("{rpm: 0}", f"{P}.rpm: must be a whole number >= 1, not 0"),
        ("{tpm: lots}", f"{P}.tpm: must be a whole number >= 1, not 'lots'"),
        ("{max_tokens: 1.5}", f"{P}.max_tokens: must be a whole number >= 1, not 1.5"),
        ("{user_rpm: true}", f"{P}.user_rpm: must be a whole number >= 1, not True"),
        (
            "{monthly_budget_usd: -5}",
            f"{P}.monthly_budget_usd: must be >= 0 with at most 6 decimals",
        ),
        ("{monthly_budget_usd: ten}", f"{P}.monthly_budget_usd: not a number: 'ten'"),
        ("{budget_clamp: 'yes'}", f"{P}.budget_clamp: must be true or false, not 'yes'"),
        (
            "{allowed_models: [smal]}",
            f"{P}.allowed_models[0]: 'smal' names no model (known: large, small)",
        ),
        ("{allowed_models: small}", f"{P}.allowed_models: must be a list of names"),
        (
            "{allowed_providers: [openai-us]}",
            f"{P}.allowed_providers[0]: 'openai-us' names no provider (known: openai-eu)",
        ),
        ("{allowed_regions: [1]}", f"{P}.allowed_regions: must be a list of names"),
        (
            "{allowed_features: [tools, vision]}",
            f"{P}.allowed_features[1]: 'vision' is not one of tools, images, json_mode, streaming",
        ),
        ("{blocked_terms: ['']}", f"{P}.blocked_terms: must be a list of non-empty texts"),
        (
            "{alert_thresholds: 80}",
            f"{P}.alert_thresholds: must be a list of percentages, e.g. [50, 80, 100]",
        ),
        (
            "{alert_thresholds: [0]}",
            f"{P}.alert_thresholds[0]: must be a percentage above 0 (at most 1000), not 0",
        ),
        ("{alert_thresholds: [50, 50]}", f"{P}.alert_thresholds: lists a threshold twice"),
        ("{alert_emails: [nobody]}", f"{P}.alert_emails[0]: 'nobody' is not an email address"),
        ("{alert_webhook_url: 'not a url'}", f"{P}.alert_webhook_url: not an http(s) URL"),
        ("{rpms: 5}", f"{P}.rpms: unknown field (did you mean rpm?)"),
        ("[rpm]", f"{P}: must be a mapping of policy fields"),
    ],
)
def test_each_policy_error_names_its_path(policy, error):
    text = HEAD + f"teams:\n  - slug: search\n    policy: {policy}\n"

    assert _errors(text) == [error]
    assert not Policy.objects.exists()


M = "teams[0] (search).model_limits"


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        ("{smal: {rpm: 1}}", f"{M}.smal: 'smal' names no model (known: large, small)"),
        ("{small: 5}", f"{M}.small: must be a mapping with rpm, tpm or both"),
        ("{small: {}}", f"{M}.small: sets neither rpm nor tpm"),
        ("{small: {rpm: -1}}", f"{M}.small.rpm: must be a whole number >= 1, not -1"),
        ("{small: {rps: 1}}", f"{M}.small.rps: unknown field (known: rpm, tpm)"),
        ("[small]", f"{M}: must map model names to {{rpm, tpm}}"),
    ],
)
def test_each_model_limit_error_names_its_path(limits, error):
    text = HEAD + f"teams:\n  - slug: search\n    model_limits: {limits}\n"

    assert _errors(text) == [error]


@pytest.mark.parametrize(
    ("org", "error"),
    [
        ("{name: x}", "organizations[0].slug: missing (required)"),
        (
            "{slug: acme, timezone: Mars/Olympus}",
            "organizations[0] (acme).timezone: 'Mars/Olympus' is not a known timezone "
            "(e.g. UTC, Europe/Paris)",
        ),
        (
            "{slug: acme, colour: red}",
            "organizations[0] (acme).colour: unknown field (known: "
            "allowed_tag_keys, compliance, model_limits, name, policy, slug, timezone)",
        ),
        (
            "{slug: acme, policy: {rpm: 0}}",
            "organizations[0] (acme).policy.rpm: must be a whole number >= 1, not 0",
        ),
        (
            "{slug: acme, model_limits: {huge: {rpm: 1}}}",
            "organizations[0] (acme).model_limits.huge: 'huge' names no model "
            "(known: large, small)",
        ),
    ],
)
def test_each_organization_error_names_its_path(org, error):
    assert _errors(HEAD + f"organizations:\n  - {org}\n") == [error]
    assert not Organization.objects.exists()


def test_an_organization_listed_twice_is_refused():
    errors = _errors(HEAD + "organizations:\n  - {slug: acme}\n  - {slug: acme}\n")

    assert errors == [
        "organizations[1] (acme).slug: 'acme' is listed twice (first at organizations[0])"
    ]


def test_all_policy_errors_of_a_file_show_at_once():
    text = HEAD + (
        "organizations:\n  - {slug: acme, policy: {budget_mode: x}}\n"
        "teams:\n  - slug: search\n    policy: {rpm: 0}\n"
        "    projects: [{slug: web, policy: {tpm: 0}}]\n"
    )

    assert len(_errors(text)) == 3
