"""The compliance report: exactly the providers used in the period and by whom, their agreements,
teams' privacy modes and requirements, and the gaps (traffic while no valid agreement was
recorded, agreements about to lapse); in the admin (page, printable page, CSV) and from
`manage.py compliancereport`."""

import csv
import datetime
import io
from itertools import count

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.models import UsageRecord
from compliance.models import DataProcessingAgreement, RequirementSet
from compliance.report import compliance_report
from policies.models import Policy

from .factories import OrganizationFactory, ProviderFactory, TeamFactory, UserFactory
from .helpers_budgets import at

_ids = count()
TODAY = datetime.date(2026, 11, 20)


def _used(provider, team, when: str, n: int = 1) -> None:
    for _ in range(n):
        UsageRecord.objects.create(
            request_id=f"report-{next(_ids)}",
            created_at=at(when),
            organization_id=team.organization_id,
            team=team,
            team_slug=team.slug,
            endpoint="chat.completions",
            requested_model="small",
            provider=provider,
            provider_name=provider.name,
            status_code=200,
        )


def _agreement(provider, *, recorded: str, **fields) -> DataProcessingAgreement:
    """An agreement as the registry recorded it at `recorded` (its first history row)."""
    agreement = DataProcessingAgreement(provider=provider, **fields)
    agreement._history_date = at(recorded)
    agreement.save()
    return agreement


def _change(agreement, *, recorded: str, **fields) -> None:
    for name, value in fields.items():
        setattr(agreement, name, value)
    agreement._history_date = at(recorded)
    agreement.save()


@pytest.fixture
def world(db):
    org = OrganizationFactory(slug="acme")
    search = TeamFactory(slug="search", organization=org)
    clinic = TeamFactory(slug="clinic", organization=org)
    openai = ProviderFactory(name="openai-eu")
    anthropic = ProviderFactory(name="anthropic")
    mistral = ProviderFactory(name="mistral")
    _agreement(
        openai,
        recorded="2026-01-01T00:00",
        status="signed",
        signed_on=datetime.date(2026, 1, 1),
        expires_on=datetime.date(2027, 1, 1),
        retention_days=30,
        training_opt_out=True,
        scc=True,
        regions=["eu"],
        owner="dpo@example.com",
    )
    _agreement(
        anthropic,
        recorded="2026-01-01T00:00",
        status="signed",
        signed_on=datetime.date(2026, 1, 1),
        baa=True,
        baa_expires_on=datetime.date(2026, 12, 5),
        zero_data_retention=True,
    )
    RequirementSet.objects.create(team=clinic, requirements=["hipaa"])
    RequirementSet.objects.create(organization=org, requirements=["gdpr"])
    Policy.objects.create(team=search, privacy_mode="full")
    return {"search": search, "clinic": clinic, "openai": openai, "anthropic": anthropic,
            "mistral": mistral}  # fmt: skip


def test_lists_exactly_the_providers_used_in_the_period_with_counts(world):
    w = world
    _used(w["mistral"], w["search"], "2026-10-31T23:59")  # the day before --since
    _used(w["openai"], w["search"], "2026-11-01T00:00", n=3)
    _used(w["openai"], w["clinic"], "2026-11-15T12:00", n=2)
    _used(w["anthropic"], w["clinic"], "2026-11-30T23:59")  # the last day, included
    _used(w["anthropic"], w["clinic"], "2026-12-01T00:00")  # the day after --until

    report = compliance_report(
        since=datetime.date(2026, 11, 1), until=datetime.date(2026, 11, 30), today=TODAY
    )

    assert [(p.name, p.requests, p.teams) for p in report.providers] == [
        ("anthropic", 1, [("clinic", 1)]),
        ("openai-eu", 5, [("search", 3), ("clinic", 2)]),
    ]
    openai = report.providers[1]
    assert openai.standing(TODAY) == "signed, expires in 42 days"
    assert (openai.agreement.retention_days, openai.agreement.regions) == (30, ["eu"])
    teams = {t.slug: t for t in report.teams}
    assert (teams["search"].privacy_mode, teams["search"].full_content) == ("full", True)
    assert (teams["clinic"].privacy_mode, teams["clinic"].requirements) == (
        "metadata",
        ("gdpr", "hipaa"),  # its own and its organization's
    )
    assert (teams["search"].requests, teams["clinic"].requests) == (3, 3)
    # clinic requires hipaa, and the agreement with openai-eu has no BAA: the DPA covers
    # everyone's traffic, the missing BAA leaves clinic's uncovered.
    assert [
        (g.provider, g.detail, g.requests, g.teams) for g in report.gaps if g.kind == "traffic"
    ] == [("openai-eu", "hipaa: no BAA recorded", 2, (("clinic", 2),))]
    assert [(g.provider, g.detail) for g in report.gaps if g.kind == "expiring"] == [
        ("anthropic", "BAA expires on 2026-12-05 (in 15 days)")
    ]


def test_traffic_while_the_agreement_had_lapsed_or_was_missing_is_a_gap(world):
    w = world
    openai = DataProcessingAgreement.objects.get(provider=w["openai"])
    # Recorded expired from Nov 10 until it was renewed on Nov 12 (the renewal does not excuse
    # the days between).
    _change(openai, recorded="2026-11-05T09:00", expires_on=datetime.date(2026, 11, 10))
    _change(openai, recorded="2026-11-12T15:00", expires_on=datetime.date(2027, 11, 12))
    _used(w["openai"], w["search"], "2026-11-09T23:00")  # still valid
    _used(w["openai"], w["search"], "2026-11-10T00:00", n=2)  # lapsed
    _used(w["openai"], w["clinic"], "2026-11-12T14:59")  # lapsed, a minute before the renewal
    _used(w["openai"], w["clinic"], "2026-11-12T15:00")  # renewed
    _used(w["mistral"], w["search"], "2026-11-03T10:00", n=4)  # no agreement at all

    report = compliance_report(
        since=datetime.date(2026, 11, 1), until=datetime.date(2026, 11, 30), today=TODAY
    )

    gaps = [
        (g.provider, g.detail, g.start, g.end, g.requests, g.teams)
        for g in report.gaps
        if g.kind == "traffic" and not g.detail.startswith("hipaa:")  # DPA gaps only here
    ]
    assert gaps == [
        (
            "mistral",
            "no agreement recorded",
            at("2026-11-01T00:00"),
            at("2026-12-01T00:00"),
            4,
            (("search", 4),),
        ),
        (
            "openai-eu",
            "expired on 2026-11-10",
            at("2026-11-10T00:00"),
            at("2026-11-12T15:00"),
            3,
            (("search", 2), ("clinic", 1)),
        ),
    ]
    by_name = {p.name: p for p in report.providers}
    assert (by_name["openai-eu"].requests, by_name["openai-eu"].uncovered_requests) == (5, 3)
    assert by_name["mistral"].standing(TODAY) == "no agreement recorded"


def test_an_agreement_not_yet_signed_or_terminated_does_not_cover_traffic(world):
    w = world
    anthropic = DataProcessingAgreement.objects.get(provider=w["anthropic"])
    _change(anthropic, recorded="2026-11-20T00:00", status="terminated")
    _used(w["anthropic"], w["clinic"], "2026-11-19T12:00")
    _used(w["anthropic"], w["clinic"], "2026-11-21T12:00", n=2)
    report = compliance_report(
        since=datetime.date(2026, 11, 1), until=datetime.date(2026, 11, 30), today=TODAY
    )
    # Terminated: neither the DPA nor the BAA counts any more.
    assert [(g.detail, g.start, g.requests) for g in report.gaps if g.kind == "traffic"] == [
        ("agreement terminated", at("2026-11-20T00:00"), 2),
        ("hipaa: agreement terminated", at("2026-11-20T00:00"), 2),
    ]
    # A terminated agreement's BAA is not "about to expire": it is gone.
    assert [g for g in report.gaps if g.kind == "expiring"] == []


def test_the_command_writes_csv_text_and_html(world, capsys):
    w = world
    _used(w["mistral"], w["search"], "2026-10-15T10:00")
    _used(w["openai"], w["clinic"], "2026-11-02T10:00", n=2)

    out = io.StringIO()
    call_command("compliancereport", "--format", "csv", "--since", "2026-11-01",
                 "--until", "2026-11-30", stdout=out)  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    providers = [r for r in rows if r["section"] == "provider"]
    assert [(r["provider"], r["team"], r["requests"]) for r in providers] == [
        ("openai-eu", "clinic", "2")
    ]
    assert providers[0]["retention_days"] == "30" and providers[0]["regions"] == "eu"
    assert providers[0]["training_opt_out"] == "yes" and providers[0]["scc"] == "yes"
    search = next(r for r in rows if r["section"] == "team" and r["team"] == "search")
    assert search["privacy_mode"] == "full"

    out = io.StringIO()
    call_command("compliancereport", "--since", "2026-10-01", "--until", "2026-10-31", stdout=out)
    text = out.getvalue()
    assert "mistral: 1 requests (search: 1)" in text and "openai-eu:" not in text
    assert "mistral: 1 requests without a valid agreement (no agreement recorded)" in text
    assert "search (acme): privacy full" in text and "FULL CONTENT KEPT" in text

    out = io.StringIO()
    call_command("compliancereport", "--format", "html", "--since", "2026-11-01", stdout=out)
    page = out.getvalue()
    assert page.startswith("<!DOCTYPE html>") and "@media print" in page
    assert "<td>openai-eu</td>" in page and "<td>mistral</td>" not in page


def test_the_command_refuses_a_bad_period(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="after --until"):
        call_command("compliancereport", "--since", "2026-11-02", "--until", "2026-11-01")
    with pytest.raises(CommandError, match="not a date"):
        call_command("compliancereport", "--since", "yesterday")


def test_the_admin_shows_prints_and_exports_the_report(admin_client, world):
    _used(world["openai"], world["clinic"], "2026-11-02T10:00", n=2)
    query = "?since=2026-11-01&until=2026-11-30"
    index = admin_client.get(reverse("admin:index")).content.decode()
    report_url = reverse("admin:compliance_compliancereport_changelist")
    assert report_url in index

    page = admin_client.get(report_url + query).content.decode()
    assert "Providers used" in page and "<td>openai-eu</td>" in page
    assert "breadcrumbs" in page and "Download CSV" in page  # inside the admin
    printable = admin_client.get(reverse("admin:compliance_compliancereport_print") + query)
    body = printable.content.decode()
    assert "<td>openai-eu</td>" in body and "breadcrumbs" not in body and "@media print" in body
    download = admin_client.get(reverse("admin:compliance_compliancereport_csv") + query)
    assert download["Content-Type"].startswith("text/csv")
    assert (
        'filename="compliance-report-2026-11-01-2026-11-30.csv"'
        in (download["Content-Disposition"])
    )
    assert "provider,openai-eu,clinic,2," in download.content.decode()


def test_the_report_needs_view_on_agreements(client, db):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="staff", is_staff=True)
    client.force_login(user)
    for name in ("changelist", "print", "csv"):
        url = reverse(f"admin:compliance_compliancereport_{name}")
        assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_dataprocessingagreement"))
    for name in ("changelist", "print", "csv"):
        url = reverse(f"admin:compliance_compliancereport_{name}")
        assert client.get(url).status_code == 200


def test_a_hipaa_teams_traffic_after_its_providers_baa_lapsed_is_a_gap(world):
    w = world
    _used(w["anthropic"], w["clinic"], "2026-12-04T23:00")  # the BAA's last day
    _used(w["anthropic"], w["clinic"], "2026-12-05T00:00", n=2)  # lapsed
    _used(w["anthropic"], w["search"], "2026-12-06T00:00")  # search does not require hipaa
    report = compliance_report(
        since=datetime.date(2026, 12, 1), until=datetime.date(2026, 12, 31), today=TODAY
    )
    gaps = [(g.provider, g.detail, g.start, g.requests, g.teams) for g in report.gaps]
    assert gaps == [
        (
            "anthropic",
            "hipaa: BAA expired on 2026-12-05",
            at("2026-12-05T00:00"),
            2,
            (("clinic", 2),),
        ),
        ("anthropic", "BAA expires on 2026-12-05 (in 15 days)", None, 0, ()),
    ]
    assert report.providers[0].uncovered_requests == 0  # the DPA itself held throughout
