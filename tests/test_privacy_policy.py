"""Privacy settings of policies: the merge of scrub_prompts and pii_patterns, their validation
(model, admin, loadconfig), the admin's flag on `full` content, ingestion of content, and the
HMAC key's system check."""

import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing.models import UsageContent, UsageRecord
from billing.services import usage_records_ingest
from gateway.checks import check_content_hmac_key
from gateway.config import ConfigError, config_load
from infra.pii import compile_patterns
from infra.usage_event import Content
from policies.engine import Rules
from policies.models import Policy
from policies.snapshot import PolicyTable, policy_table_build
from tenants.services import api_key_issue

from .factories import TeamFactory
from .helpers_usage import usage_event
from .test_policy_engine import KEY, ORG, TEAM, principal


def _effective(org=None, team=None, key=None):
    def rules(spec, scope_id):
        return {} if spec is None else {scope_id: Rules(scope_id=scope_id, **spec)}

    table = PolicyTable(
        built_at=time.monotonic(),
        organizations={ORG: ("acme", "UTC")},
        org_rules=rules(org, ORG),
        team_rules=rules(team, TEAM),
        key_rules=rules(key, KEY),
    )
    return table.effective(principal(project_id=None))


def test_the_default_policy_handles_no_content():
    policy = _effective()
    assert (policy.privacy_mode, policy.scrub_prompts, policy.pii_patterns) == (
        "metadata",
        False,
        (),
    )
    assert policy.handles_content is False


def test_any_level_turning_scrubbing_on_wins():
    policy = _effective(org={"scrub_prompts": True}, team={"scrub_prompts": False})
    assert policy.scrub_prompts is True and policy.handles_content is True
    assert _effective(team={"scrub_prompts": False}).scrub_prompts is False


def test_a_privacy_mode_other_than_metadata_handles_content():
    assert _effective(team={"privacy_mode": "hashed"}).handles_content is True


def test_patterns_add_up_and_the_more_specific_level_wins_on_a_label():
    org = compile_patterns({"EMPLOYEE_ID": r"EMP-\d{6}", "TICKET": r"T-\d+"})
    key = compile_patterns({"EMPLOYEE_ID": r"E\d{4}"})
    policy = _effective(org={"pii_patterns": org}, key={"pii_patterns": key})
    found = {label: p.pattern for label, p in policy.pii_patterns}
    assert found == {"EMPLOYEE_ID": r"E\d{4}", "TICKET": r"T-\d+"}


def test_the_snapshot_compiles_patterns_once_per_build(db):
    team = TeamFactory(slug="t1")
    Policy.objects.create(team=team, scrub_prompts=True, pii_patterns={"emp": r"EMP-\d{6}"})
    rules = policy_table_build().team_rules[team.pk]
    assert rules.scrub_prompts is True
    [(label, pattern)] = rules.pii_patterns
    assert label == "EMP" and pattern.search("id EMP-123456")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"EMP": "EMP-(\\d"}, "PII pattern 'EMP'"),
        ({"bad label!": "x"}, "use letters, digits and _"),
        (["EMP-\\d"], "must map labels to regular expressions"),
        ({"EMP": ""}, "must map labels to regular expressions"),
    ],
)
def test_an_invalid_pattern_is_refused_by_clean(team, value, says):
    with pytest.raises(ValidationError) as raised:
        Policy(team=team, pii_patterns=value).full_clean()
    assert says in str(raised.value.message_dict["pii_patterns"])


YAML = """
providers:
  - {{name: p, kind: mock}}
models:
  - name: small
    deployments: [{{provider: p, model: s}}]
teams:
  - slug: search
    allowed_models: [small]
    policy: {policy}
"""


def test_loadconfig_reads_scrubbing_and_patterns(db):
    policy = (
        "{privacy_mode: redacted, scrub_prompts: true, pii_patterns: {EMPLOYEE_ID: 'EMP-\\d{6}'}}"
    )
    config_load(text=YAML.format(policy=policy))
    stored = Policy.objects.get(team__slug="search")
    assert (stored.privacy_mode, stored.scrub_prompts) == ("redacted", True)
    assert stored.pii_patterns == {"EMPLOYEE_ID": r"EMP-\d{6}"}
    # Left out: inherit (None), not "off".
    config_load(text=YAML.format(policy="{privacy_mode: redacted}"))
    stored.refresh_from_db()
    assert (stored.scrub_prompts, stored.pii_patterns) == (None, None)


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        (
            "{pii_patterns: {EMP: 'EMP-(\\d'}}",
            "teams[0] (search).policy.pii_patterns: PII pattern 'EMP': missing ), unterminated "
            "subpattern at position 4",
        ),
        (
            "{pii_patterns: [a]}",
            "teams[0] (search).policy.pii_patterns: must map labels to regular expressions",
        ),
        (
            "{scrub_prompts: 'yes'}",
            "teams[0] (search).policy.scrub_prompts: must be true or false, not 'yes'",
        ),
    ],
)
def test_loadconfig_refuses_a_bad_pattern_at_its_path(db, policy, error):
    with pytest.raises(ConfigError) as caught:
        config_load(text=YAML.format(policy=policy))
    assert any(error in e for e in caught.value.errors), caught.value.errors
    assert not Policy.objects.exists()


# --- the admin ------------------------------------------------------------------------------


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def test_full_content_is_flagged_in_the_policy_and_team_lists(admin_client, team, other_team):
    Policy.objects.create(team=team, privacy_mode="full")
    Policy.objects.create(team=other_team, privacy_mode="redacted")

    policies = admin_client.get(_url(Policy, "changelist")).content.decode()
    teams = admin_client.get(_url(type(team), "changelist")).content.decode()

    for page in (policies, teams):
        assert page.count("privacy-full") == 1
        assert "FULL CONTENT" in page and "redacted" in page


def test_the_team_list_shows_the_organizations_mode_when_it_is_more_private(admin_client, team):
    Policy.objects.create(team=team, privacy_mode="full")
    Policy.objects.create(organization=team.organization, privacy_mode="hashed")
    page = admin_client.get(_url(type(team), "changelist")).content.decode()
    assert "privacy-full" not in page and "hashed" in page


def test_the_admin_refuses_an_invalid_pattern(admin_client, team):
    data = {
        "team": team.pk,
        "max_tokens_mode": "clamp",
        "budget_mode": "hard",
        "blocked_terms": "[]",
        "alert_thresholds": "[]",
        "alert_emails": "[]",
        "privacy_mode": "redacted",
        "scrub_prompts": "true",
        "pii_patterns": '{"EMP": "EMP-(\\\\d"}',
    }
    response = admin_client.post(_url(Policy, "add"), data)
    assert response.status_code == 200
    assert "PII pattern &#x27;EMP&#x27;: missing )" in response.content.decode()
    assert not Policy.objects.exists()
    data["pii_patterns"] = '{"EMP": "EMP-\\\\d{6}"}'
    assert admin_client.post(_url(Policy, "add"), data).status_code == 302
    stored = Policy.objects.get(team=team)
    assert (stored.scrub_prompts, stored.pii_patterns) == (True, {"EMP": r"EMP-\d{6}"})


# --- ingestion --------------------------------------------------------------------------------


def test_ingestion_stores_content_once_beside_the_row(team):
    api_key = api_key_issue(team=team, name="k").api_key
    kept = Content(
        mode="redacted", prompt='{"messages":[]}', response="[EMAIL]", redactions={"EMAIL": 1}
    )
    with_content = usage_event(api_key, content=kept, redactions=2)
    without = usage_event(api_key)

    usage_records_ingest(events=[with_content, without])
    usage_records_ingest(events=[with_content])  # a replay

    assert UsageRecord.objects.count() == 2
    assert UsageRecord.objects.get(request_id=with_content.request_id).redactions == 2
    [row] = UsageContent.objects.all()
    assert row.request_id == with_content.request_id
    assert (row.team_id, row.mode, row.response, row.redactions) == (
        team.pk,
        "redacted",
        "[EMAIL]",
        {"EMAIL": 1},
    )
    assert row.created_at == UsageRecord.objects.get(request_id=row.request_id).created_at


# --- the HMAC key's check ---------------------------------------------------------------------


def test_a_short_hmac_key_is_an_error(settings):
    settings.GATEWAY_CONTENT_HMAC_KEY = "Xq7-key-material"
    [error] = check_content_hmac_key(None)
    assert error.id == "gateway.E090"
    assert "Xq7" not in error.msg  # never the key itself


def test_hashed_policies_without_a_key_are_a_warning(settings, transactional_db):
    settings.GATEWAY_CONTENT_HMAC_KEY = ""
    assert check_content_hmac_key(None) == []
    Policy.objects.create(team=TeamFactory(slug="h"), privacy_mode="hashed")
    [warning] = check_content_hmac_key(None)
    assert warning.id == "gateway.W090"
    settings.GATEWAY_CONTENT_HMAC_KEY = "k" * 32
    assert check_content_hmac_key(None) == []
