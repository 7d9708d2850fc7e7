"""Policies in the admin: their pages render and save, inlines sit on the tenants' pages, the
webhook URL is write-only, and a key's or project's limits may only narrow its team's."""

import re

import pytest
from django.urls import reverse

from policies.models import ModelLimit, Policy
from tenants.models import ApiKey, Organization, Project, Team
from tenants.services import api_key_issue

from .factories import ProjectFactory
from .helpers_admin import KEY_INLINES, empty_inlines
from .test_admin import _team_form

WEBHOOK = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _policy_form(**fields) -> dict:
    """A policy's form data (as the admin posts it), with defaults for the required fields."""
    data = {
        "max_tokens_mode": "clamp",
        "budget_mode": "hard",
        "blocked_terms": "[]",
        "alert_thresholds": "[]",
        "alert_emails": "[]",
        "privacy_mode": "",
    }
    data.update({k: str(v) for k, v in fields.items()})
    return data


def _inline(prefix: str, initial: int, **fields) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1",
    }
    data.update({f"{prefix}-0-{k}": v for k, v in _policy_form(**fields).items()})
    return data


@pytest.fixture
def team_policy(team):
    return Policy.objects.create(team=team, rpm=600, tpm=200_000, monthly_budget_usd=50)


def test_policy_pages_render_with_the_webhook_only_as_set_or_not(admin_client, team_policy):
    team_policy.alert_webhook_url = WEBHOOK
    team_policy.save()

    pages = {
        url: admin_client.get(url)
        for url in (
            _url(Policy, "changelist"),
            _url(Policy, "add"),
            _url(Policy, "change", team_policy.pk),
            _url(Team, "change", team_policy.team_id),
        )
    }

    for url, response in pages.items():
        assert response.status_code == 200, url
        page = response.content.decode()
        assert WEBHOOK not in page and "very-secret-token" not in page, url
    change = pages[_url(Policy, "change", team_policy.pk)].content.decode()
    assert "Currently set." in change
    listing = pages[_url(Policy, "changelist")].content.decode()
    assert "$50.00 (hard)" in listing and "600" in listing


def test_policy_add_page_says_not_set(admin_client, db):
    assert "Currently not set." in admin_client.get(_url(Policy, "add")).content.decode()


def test_policy_admin_saves_and_the_webhook_is_stored_encrypted(admin_client, team):
    data = _policy_form(team=team.pk, rpm=100, alert_webhook_url=WEBHOOK)

    response = admin_client.post(_url(Policy, "add"), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    policy = Policy.objects.get(team=team)
    assert policy.rpm == 100
    assert policy.alert_webhook_url == WEBHOOK
    assert "very-secret-token" not in policy.alert_webhook_encrypted


def test_a_blank_webhook_keeps_it_and_the_box_clears_it(admin_client, team_policy):
    team_policy.alert_webhook_url = WEBHOOK
    team_policy.save()
    url = _url(Policy, "change", team_policy.pk)

    kept = admin_client.post(url, _policy_form(team=team_policy.team_id, rpm=500))
    team_policy.refresh_from_db()
    assert kept.status_code == 302
    assert (team_policy.rpm, team_policy.alert_webhook_url) == (500, WEBHOOK)

    cleared = admin_client.post(
        url, _policy_form(team=team_policy.team_id, clear_alert_webhook_url="on")
    )
    team_policy.refresh_from_db()
    assert cleared.status_code == 302
    assert team_policy.alert_webhook_url == ""


def test_a_policy_belongs_to_exactly_one_level(admin_client, team):
    org = team.organization
    response = admin_client.post(
        _url(Policy, "add"), _policy_form(team=team.pk, organization=org.pk)
    )

    assert response.status_code == 200
    assert "exactly one organization, team, project or key" in response.content.decode()
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_features", '["tools", "telepathy"]', "Unknown: telepathy"),
        ("allowed_models", '"small"', "Enter a JSON list of names"),
        ("alert_thresholds", "[50, -1]", "Enter a JSON list of percentages"),
        ("alert_emails", '["not-an-address"]', "is not an email address"),
        ("blocked_terms", '["ok", ""]', "Enter a JSON list of terms"),
    ],
)
def test_list_fields_are_checked(admin_client, team, field, value, message):
    response = admin_client.post(_url(Policy, "add"), _policy_form(team=team.pk, **{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()


def test_team_page_edits_its_policy_and_model_limits_inline(admin_client, team):
    data = _team_form(team)
    data.update(_inline("policy", 0, rpm=42, allowed_features='["tools"]'))
    data.update(
        {
            "model_limits-TOTAL_FORMS": "1",
            "model_limits-0-model": "small",
            "model_limits-0-rpm": "10",
            "model_limits-0-tpm": "",
        }
    )

    response = admin_client.post(_url(Team, "change", team.pk), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Policy.objects.get(team=team).allowed_features == ["tools"]
    limit = ModelLimit.objects.get(team=team)
    assert (limit.model, limit.rpm, limit.tpm) == ("small", 10, None)


def test_organization_page_has_timezone_and_inlines(admin_client, team):
    org = team.organization
    page = admin_client.get(_url(Organization, "change", org.pk)).content.decode()

    assert 'name="timezone"' in page
    assert 'name="policy-TOTAL_FORMS"' in page
    assert 'name="model_limits-TOTAL_FORMS"' in page
    assert "UTC" in admin_client.get(_url(Organization, "changelist")).content.decode()


def test_project_and_key_pages_carry_the_policy_inline(admin_client, team):
    project = ProjectFactory(team=team)
    key = api_key_issue(team=team, name="k").api_key

    for url in (_url(Project, "change", project.pk), _url(ApiKey, "change", key.pk)):
        page = admin_client.get(url).content.decode()
        assert 'name="policy-TOTAL_FORMS"' in page, url
        assert 'name="model_limits-TOTAL_FORMS"' not in page, url


def test_key_inline_refuses_limits_above_the_teams(admin_client, team_policy):
    key = api_key_issue(team=team_policy.team, name="ci-bot").api_key
    data = {"team": key.team_id, "name": key.name, "allowed_models": "[]"}
    data.update(_inline("policy", 0, rpm=601, monthly_budget_usd="50.01"))

    response = admin_client.post(_url(ApiKey, "change", key.pk), data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "may not exceed 600, set by team &#x27;search&#x27;" in page
    assert "may not exceed $50.00" in page
    assert not Policy.objects.filter(api_key=key).exists()


def test_key_issued_in_admin_with_its_policy_inline(admin_client, team_policy):
    data = {"team": team_policy.team_id, "name": "from-admin", "allowed_models": "[]"}
    data.update(_inline("policy", 0, rpm=60, tpm=1000))

    response = admin_client.post(_url(ApiKey, "add"), data)

    assert response.status_code == 200
    assert re.search(rb'id="issued-secret"', response.content)
    policy = Policy.objects.get(api_key__name="from-admin")
    assert (policy.rpm, policy.tpm) == (60, 1000)


def test_a_key_within_its_teams_limits_saves(admin_client, team_policy):
    key = api_key_issue(team=team_policy.team, name="ci-bot").api_key
    data = {"team": key.team_id, "name": key.name, "allowed_models": "[]"}
    data.update(_inline("policy", 0, rpm=600, monthly_budget_usd="5"))

    response = admin_client.post(_url(ApiKey, "change", key.pk), data)

    assert response.status_code == 302
    assert Policy.objects.get(api_key=key).rpm == 600


def test_key_change_without_a_policy_still_saves(admin_client, team):
    key = api_key_issue(team=team, name="plain").api_key
    data = {"team": key.team_id, "name": "renamed", "allowed_models": "[]"}
    data.update(empty_inlines(*KEY_INLINES))

    assert admin_client.post(_url(ApiKey, "change", key.pk), data).status_code == 302
    assert not Policy.objects.exists()
