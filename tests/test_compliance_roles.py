"""The admin's roles (compliance/roles.py, `manage.py creategroups`) through the admin itself: a
compliance officer changes compliance models and only reads the rest; an auditor reads
everything and changes nothing; a platform admin changes anything."""

import datetime
import io
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from compliance.models import DataProcessingAgreement
from compliance.roles import AUDITOR, COMPLIANCE_OFFICER, PLATFORM_ADMIN, role_permissions
from routing.models import Provider
from tenants.models import ApiKey, Team
from tenants.services import api_key_issue

from .factories import ProviderFactory, TeamFactory, UserFactory


class _Form(HTMLParser):
    """The fields the admin's change form would post as it stands: its inputs, checked boxes,
    selected options and text areas (files and submit buttons left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("file", "submit", "button", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def _resubmit(client, url: str, **changes):
    """Post the change page's own form back, with `changes`."""
    page = client.get(url)
    assert page.status_code == 200
    parser = _Form()
    parser.feed(page.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    for name, value in changes.items():
        data[name] = [value]
    data.pop("csrfmiddlewaretoken", None)
    return client.post(url, data)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def groups(db):
    call_command("creategroups", stdout=io.StringIO())


def _member(client, role: str):
    user = UserFactory(username=role.replace(" ", "-"), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def things(db):
    provider = ProviderFactory(name="openai-eu")
    team = TeamFactory(slug="search")
    api_key_issue(team=team, name="ci")
    agreement = DataProcessingAgreement.objects.create(
        provider=provider, status="signed", signed_on=datetime.date(2026, 1, 15)
    )
    return {
        DataProcessingAgreement: agreement,
        Team: team,
        Provider: provider,
        ApiKey: ApiKey.objects.get(team=team),
    }


def test_creategroups_is_idempotent_and_restores_the_rules(groups):
    out = io.StringIO()
    call_command("creategroups", stdout=out)
    assert "compliance officer: updated" in out.getvalue()
    officer = Group.objects.get(name=COMPLIANCE_OFFICER)
    change_team = Permission.objects.get(codename="change_team")
    officer.permissions.add(change_team)  # granted by hand, against the rules
    officer.permissions.remove(Permission.objects.get(codename="view_team"))
    call_command("creategroups", stdout=io.StringIO())
    assert Group.objects.filter(name__in=[PLATFORM_ADMIN, COMPLIANCE_OFFICER, AUDITOR]).count() == 3
    for role in (PLATFORM_ADMIN, COMPLIANCE_OFFICER, AUDITOR):
        group = Group.objects.get(name=role)
        assert set(group.permissions.all()) == set(role_permissions(role))
    codenames = set(officer.permissions.values_list("codename", flat=True))
    assert "change_team" not in codenames and "view_team" in codenames
    # History rows are the compliance app's models too.
    assert {"view_historicaldataprocessingagreement", "change_dataprocessingagreement"} <= (
        codenames
    )
    auditor = set(Group.objects.get(name=AUDITOR).permissions.values_list("codename", flat=True))
    assert auditor and all(c.startswith("view_") for c in auditor)


def test_the_officer_edits_agreements_and_only_reads_the_rest(client, groups, things):
    officer = _member(client, COMPLIANCE_OFFICER)
    agreement = things[DataProcessingAgreement]
    url = _url(DataProcessingAgreement, "change", agreement.pk)
    response = _resubmit(client, url, notes="renewal under negotiation")
    assert response.status_code == 302, response.content.decode()[:2000]
    agreement.refresh_from_db()
    assert agreement.notes == "renewal under negotiation"
    latest = agreement.history.latest()
    assert (latest.history_user, latest.notes) == (officer, "renewal under negotiation")
    assert client.get(_url(DataProcessingAgreement, "history", agreement.pk)).status_code == 200
    assert client.get(_url(DataProcessingAgreement, "add")).status_code == 200

    for model in (Team, Provider, ApiKey):
        obj = things[model]
        change = _url(model, "change", obj.pk)
        page = client.get(change)
        assert page.status_code == 200  # read
        assert 'name="_save"' not in page.content.decode()
        assert client.post(change, {"name": "renamed"}).status_code == 403
        assert client.get(_url(model, "add")).status_code == 403
        assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert Team.objects.get(pk=things[Team].pk).name != "renamed"
    assert client.get(reverse("admin:compliance_compliancereport_changelist")).status_code == 200


def test_the_auditor_reads_everything_and_changes_nothing(client, groups, things):
    _member(client, AUDITOR)
    for model, obj in things.items():
        listing = client.get(_url(model, "changelist"))
        assert listing.status_code == 200
        assert _url(model, "add") not in listing.content.decode()  # no add button
        change = _url(model, "change", obj.pk)
        page = client.get(change).content.decode()
        assert 'name="_save"' not in page
        assert _url(model, "delete", obj.pk) not in page  # no delete button
        assert client.post(change, {"notes": "x", "name": "x"}).status_code == 403
        assert client.get(_url(model, "add")).status_code == 403
        assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    agreement = things[DataProcessingAgreement]
    assert client.get(_url(DataProcessingAgreement, "history", agreement.pk)).status_code == 200
    assert agreement.history.count() == 1  # nothing changed
    report = reverse("admin:compliance_compliancereport_csv")
    assert client.get(report).status_code == 200


def test_the_platform_admin_changes_anything(client, groups, things):
    _member(client, PLATFORM_ADMIN)
    team = things[Team]
    response = _resubmit(client, _url(Team, "change", team.pk), name="Search and ads")
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Team.objects.get(pk=team.pk).name == "Search and ads"
    agreement = things[DataProcessingAgreement]
    response = _resubmit(client, _url(DataProcessingAgreement, "change", agreement.pk), notes="ok")
    assert response.status_code == 302
