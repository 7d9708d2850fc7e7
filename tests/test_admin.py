"""The admin, as a superuser sees it: every page renders, secrets are shown once or never, and the
request log cannot be edited."""

import json
import re

import pytest
from django.contrib import admin
from django.urls import reverse

from audit.models import AuditEvent
from billing.models import BudgetAlert, BudgetOverview, SpendLedger, UsageRecord
from compliance.models import ComplianceReminder, ComplianceReport
from routing.models import DeploymentHealth, Provider
from tenants.keys import hash_secret
from tenants.models import ApiKey, Team
from tenants.selectors import api_key_principal_get
from tenants.services import api_key_issue

from .factories import DeploymentFactory, ProjectFactory, ProviderFactory, UserFactory
from .helpers_admin import KEY_INLINES, TEAM_INLINES, empty_inlines

UPSTREAM_SECRET = "sk-upstream-admin-credential-42"


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def populated(team, member):
    """One row of every kind, so changelists render real rows, not just the empty state."""
    provider = ProviderFactory(name="upstream")
    provider.set_api_key(UPSTREAM_SECRET)
    provider.save()
    deployment = DeploymentFactory(provider=provider)
    project = ProjectFactory(team=team)
    issued = api_key_issue(team=team, name="listed", project=project)
    record = UsageRecord.objects.create(
        request_id="req-admin-1",
        created_at="2025-01-01T00:00:00Z",
        team=team,
        team_slug=team.slug,
        api_key=issued.api_key,
        key_prefix=issued.api_key.prefix,
        endpoint="chat.completions",
        requested_model="small",
        deployment=deployment,
        provider=provider,
        provider_name=provider.name,
        status_code=200,
        input_tokens=10,
        output_tokens=20,
    )
    return {"provider": provider, "issued": issued, "record": record}


def _registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def test_every_registered_model_changelist_renders(admin_client, populated):
    for model, _ in _registered():
        response = admin_client.get(_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label


def test_every_registered_model_add_page_renders_except_the_records(admin_client, populated):
    refused = set()
    for model, _ in _registered():
        response = admin_client.get(_url(model, "add"))
        assert response.status_code in (200, 403), model._meta.label
        if response.status_code == 403:
            refused.add(model)
    # Only records refuse additions: the request log, the budget ledger, alerts and overview
    # (built from the request log and the policies), the health checks' results, compliance
    # reminders sent, the compliance report and the audit log.
    assert refused == {
        AuditEvent,
        UsageRecord,
        SpendLedger,
        BudgetAlert,
        BudgetOverview,
        DeploymentHealth,
        ComplianceReminder,
        ComplianceReport,
    }


def test_every_row_change_page_renders(admin_client, populated):
    for model, _ in _registered():
        for obj in model.objects.all():
            response = admin_client.get(_url(model, "change", obj.pk))
            assert response.status_code == 200, f"{model._meta.label} {obj.pk}"


# --- API keys ----------------------------------------------------------------------------------


def _issue_in_admin(admin_client, team, **extra) -> tuple:
    data = {
        "team": team.pk,
        "name": "from-admin",
        "allowed_models": "[]",
        **empty_inlines(*KEY_INLINES),
        **extra,
    }
    response = admin_client.post(_url(ApiKey, "add"), data)
    assert response.status_code == 200, response.content[:2000]
    match = re.search(rb'id="issued-secret"[^>]*>(sk-gw-[A-Za-z0-9_-]+)<', response.content)
    assert match, "the issued page shows the secret"
    return response, match.group(1).decode()


def test_issuing_key_in_admin_shows_secret_once_and_stores_only_its_hash(admin_client, team):
    response, secret = _issue_in_admin(admin_client, team)
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(name="from-admin")
    assert key.key_hash == hash_secret(secret)
    assert secret.startswith(key.prefix)
    # Nothing outside this one response carries it: not the change page, not the list, not a
    # flash message waiting in the session for the next page.
    for url in (_url(ApiKey, "change", key.pk), _url(ApiKey, "changelist")):
        page = admin_client.get(url).content.decode()
        assert secret not in page
        assert key.key_hash not in page
        assert key.prefix in page


def test_admin_issued_key_keeps_narrowed_models_and_expiry(admin_client, team):
    _issue_in_admin(
        admin_client,
        team,
        allowed_models='["small"]',
        expires_at_0="2099-01-01",
        expires_at_1="00:00:00",
    )
    key = ApiKey.objects.get(name="from-admin")
    assert key.allowed_models == ["small"]
    assert key.expires_at.year == 2099


def test_key_pages_never_show_hash_or_secret(admin_client, populated):
    issued = populated["issued"]
    for url in (_url(ApiKey, "changelist"), _url(ApiKey, "change", issued.api_key.pk)):
        page = admin_client.get(url).content.decode()
        assert issued.secret not in page
        assert issued.api_key.key_hash not in page


def test_editing_key_in_admin_keeps_its_hash(admin_client, populated):
    key = populated["issued"].api_key
    data = {
        "team": key.team_id,
        "name": "renamed",
        "allowed_models": '["small"]',
        **empty_inlines(*KEY_INLINES),
    }
    response = admin_client.post(_url(ApiKey, "change", key.pk), data)
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "renamed"
    assert key.key_hash == hash_secret(populated["issued"].secret)


def test_key_saved_with_blank_allowed_models_means_as_the_team(admin_client, populated):
    key = populated["issued"].api_key
    data = {
        "team": key.team_id,
        "name": key.name,
        "allowed_models": "",
        **empty_inlines(*KEY_INLINES),
    }
    response = admin_client.post(_url(ApiKey, "change", key.pk), data)
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.allowed_models == []


@pytest.mark.parametrize("value", ['"small"', '{"small": true}', "[1, 2]"])
def test_allowed_models_must_be_a_list_of_names(admin_client, team, value):
    # A bare string would be read letter by letter as a set of model names.
    response = admin_client.post(
        _url(Team, "change", team.pk), _team_form(team, allowed_models=value)
    )
    assert response.status_code == 200
    assert "Enter a JSON list of model names" in response.content.decode()
    team.refresh_from_db()
    assert team.allowed_models == ["*"]


def test_revoke_action_revokes_selected_keys(admin_client, populated):
    key = populated["issued"].api_key
    response = admin_client.post(
        _url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- Provider credentials ----------------------------------------------------------------------


def _provider_form(provider: Provider, **extra) -> dict:
    data = {
        "name": provider.name,
        "kind": provider.kind,
        "api_base": provider.api_base,
        "region": provider.region,
        "first_byte_timeout_s": provider.first_byte_timeout_s,
        "idle_timeout_s": provider.idle_timeout_s,
        "attempt_timeout_s": provider.attempt_timeout_s,
        "enabled": "on",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


@pytest.fixture
def provider(db):
    provider = ProviderFactory(name="credentialed", kind=Provider.Kind.OPENAI)
    provider.set_api_key(UPSTREAM_SECRET)
    provider.save()
    return provider


def test_provider_change_form_never_renders_the_credential(admin_client, provider):
    page = admin_client.get(_url(Provider, "change", provider.pk)).content.decode()
    assert UPSTREAM_SECRET not in page
    assert provider.credentials_encrypted not in page
    assert 'name="api_key"' in page  # the write-only field is there, empty


def test_provider_changelist_shows_only_whether_a_credential_is_set(admin_client, provider):
    page = admin_client.get(_url(Provider, "changelist")).content.decode()
    assert UPSTREAM_SECRET not in page
    assert provider.credentials_encrypted not in page
    assert "Credential set" in page


def test_saving_provider_with_blank_api_key_keeps_the_credential(admin_client, provider):
    token = provider.credentials_encrypted
    response = admin_client.post(
        _url(Provider, "change", provider.pk), _provider_form(provider, api_key="", region="us")
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.region == "us"
    assert provider.credentials_encrypted == token
    assert provider.get_api_key() == UPSTREAM_SECRET


def test_saving_provider_with_new_api_key_replaces_it_encrypted(admin_client, provider):
    response = admin_client.post(
        _url(Provider, "change", provider.pk), _provider_form(provider, api_key="sk-new-value")
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.get_api_key() == "sk-new-value"
    assert "sk-new-value" not in provider.credentials_encrypted


def test_clear_credentials_removes_the_credential(admin_client, provider):
    response = admin_client.post(
        _url(Provider, "change", provider.pk), _provider_form(provider, clear_credentials="on")
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert not provider.has_credentials


def test_openai_compatible_provider_without_base_url_is_rejected(admin_client, provider):
    data = _provider_form(provider, kind=Provider.Kind.OPENAI_COMPATIBLE, api_base="")
    response = admin_client.post(_url(Provider, "change", provider.pk), data)
    assert response.status_code == 200
    assert "This kind of provider needs a base URL." in response.content.decode()
    provider.refresh_from_db()
    assert provider.kind == Provider.Kind.OPENAI


# --- Teams -------------------------------------------------------------------------------------


def _team_form(team, **extra) -> dict:
    data = {
        "organization": team.organization_id,
        "slug": team.slug,
        "name": team.name,
        "allowed_models": json.dumps(team.allowed_models),
        "is_active": "on",
        **empty_inlines(*TEAM_INLINES),
    }
    data.update(extra)
    return data


def test_team_saved_with_blank_allowed_models_stays_closed(admin_client, team, issue_key):
    """A blank models box in the form means "no models", never a broken team."""
    secret = issue_key(team)
    response = admin_client.post(_url(Team, "change", team.pk), _team_form(team, allowed_models=""))
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.allowed_models == []
    principal = api_key_principal_get(key_hash=hash_secret(secret))
    assert principal.allowed_models == frozenset()


def test_team_form_adds_a_member_inline(admin_client, team):
    user = UserFactory(username="newcomer")
    data = _team_form(
        team,
        **{
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-user": user.pk,
            "memberships-0-role": "viewer",
        },
    )
    response = admin_client.post(_url(Team, "change", team.pk), data)
    assert response.status_code == 302
    assert list(Team.objects.for_user(user)) == [team]
    assert team.memberships.get(user=user).role == "viewer"


# --- The request log ---------------------------------------------------------------------------


def test_usage_record_admin_is_read_only(admin_client, populated):
    record = populated["record"]
    change_url = _url(UsageRecord, "change", record.pk)
    assert admin_client.get(_url(UsageRecord, "add")).status_code == 403
    assert admin_client.post(_url(UsageRecord, "add"), {"request_id": "forged"}).status_code == 403
    # The detail page is a read-only view; posting to it is refused.
    page = admin_client.get(change_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(change_url, {"status_code": 500}).status_code == 403
    assert admin_client.get(_url(UsageRecord, "delete", record.pk)).status_code == 403
    assert (
        admin_client.post(_url(UsageRecord, "delete", record.pk), {"post": "yes"}).status_code
        == 403
    )
    # No bulk delete action offered, and a forged one does nothing.
    changelist = admin_client.get(_url(UsageRecord, "changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist
    admin_client.post(
        _url(UsageRecord, "changelist"),
        {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
    )
    assert UsageRecord.objects.filter(pk=record.pk, status_code=200).exists()
    assert not UsageRecord.objects.filter(request_id="forged").exists()
