"""The compliance registry in the admin: the agreement's standing today in the list, the
filters, editing (each change a history row naming who made it), requirements on the team's
own page and on their own, and uploaded documents served only through the admin."""

import datetime
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from compliance.models import DataProcessingAgreement, RequirementSet

from .factories import AgreementFactory, ProviderFactory
from .helpers_admin import TEAM_INLINES, empty_inlines

TODAY = timezone.localdate()
LIST = reverse("admin:compliance_dataprocessingagreement_changelist")


def _change(agreement) -> str:
    return reverse("admin:compliance_dataprocessingagreement_change", args=[agreement.pk])


def _form(agreement, **changes) -> dict:
    data = {
        "provider": agreement.provider_id,
        "sub_processor": agreement.sub_processor,
        "status": agreement.status,
        "signed_on": agreement.signed_on.isoformat() if agreement.signed_on else "",
        "expires_on": agreement.expires_on.isoformat() if agreement.expires_on else "",
        "document_url": agreement.document_url,
        "retention_days": agreement.retention_days or "",
        "regions": agreement.regions,
        "sub_processors": "\n".join(agreement.sub_processors),
        "owner": agreement.owner,
        "notes": agreement.notes,
    }
    for flag in ("zero_data_retention", "training_opt_out", "scc", "baa"):
        if getattr(agreement, flag):
            data[flag] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def agreements(db):
    soon = AgreementFactory(
        provider=ProviderFactory(name="soon-ends"),
        signed_on=TODAY - datetime.timedelta(days=300),
        expires_on=TODAY + datetime.timedelta(days=20),
    )
    lapsed = AgreementFactory(
        provider=ProviderFactory(name="lapsed"),
        signed_on=TODAY - datetime.timedelta(days=400),
        expires_on=TODAY,
        baa=True,
        baa_expires_on=TODAY - datetime.timedelta(days=1),
    )
    open_ended = AgreementFactory(provider=ProviderFactory(name="open-ended"))
    review = AgreementFactory(provider=ProviderFactory(name="in-review"), status="in_review")
    return {"soon": soon, "lapsed": lapsed, "open": open_ended, "review": review}


def test_the_list_shows_each_agreement_s_standing_today(admin_client, agreements):
    page = admin_client.get(LIST).content.decode()
    assert "signed, expires in 20 days" in page
    assert "expired" in page
    assert "signed, no expiry" in page
    assert "in review" in page


@pytest.mark.parametrize(
    ("standing", "providers"),
    [
        ("valid", {"soon-ends", "open-ended"}),
        ("expiring", {"soon-ends"}),
        ("lapsed", {"lapsed"}),
        ("unsigned", {"in-review"}),
    ],
)
def test_the_standing_filter(admin_client, agreements, standing, providers):
    response = admin_client.get(LIST, {"standing": standing})
    shown = {a.provider.name for a in response.context["cl"].result_list}
    assert shown == providers


def test_an_admin_edit_is_saved_with_a_history_row_naming_the_editor(
    admin_client, admin_user, agreements
):
    agreement = agreements["open"]
    response = admin_client.post(
        _change(agreement),
        _form(agreement, baa="on", baa_signed_on="2026-01-15", regions=["eu", "uk"]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    agreement.refresh_from_db()
    assert (agreement.baa, agreement.regions) == (True, ["eu", "uk"])
    latest = agreement.history.latest()
    assert (latest.history_type, latest.history_user, latest.baa) == ("~", admin_user, True)
    assert agreement.history.count() == 2  # created, then this change
    history = admin_client.get(
        reverse("admin:compliance_dataprocessingagreement_history", args=[agreement.pk])
    )
    assert history.status_code == 200
    assert admin_user.username in history.content.decode()


def test_an_invalid_edit_is_refused_and_leaves_no_history(admin_client, agreements):
    agreement = agreements["open"]
    response = admin_client.post(
        _change(agreement), _form(agreement, status="signed", signed_on="")
    )
    assert response.status_code == 200
    assert "a signed agreement needs its signing date" in response.content.decode()
    assert agreement.history.count() == 1


def test_a_deleted_agreement_keeps_its_history(admin_client, agreements):
    agreement = agreements["review"]
    pk = agreement.pk
    delete = reverse("admin:compliance_dataprocessingagreement_delete", args=[pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    rows = DataProcessingAgreement.history.filter(id=pk).order_by("history_date")
    assert [r.history_type for r in rows] == ["+", "-"]


def test_requirements_set_on_the_team_s_page(admin_client, admin_user, team):
    data = {
        "organization": team.organization_id,
        "slug": team.slug,
        "name": team.name,
        "allowed_models": json.dumps(team.allowed_models),
        "is_active": "on",
        **empty_inlines(*[p for p in TEAM_INLINES if p != "compliance_requirements"]),
        "compliance_requirements-TOTAL_FORMS": "1",
        "compliance_requirements-INITIAL_FORMS": "0",
        "compliance_requirements-MIN_NUM_FORMS": "0",
        "compliance_requirements-MAX_NUM_FORMS": "1",
        "compliance_requirements-0-requirements": ["hipaa", "zdr"],
        "compliance_requirements-0-notes": "patient data",
    }
    response = admin_client.post(reverse("admin:tenants_team_change", args=[team.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    found = RequirementSet.objects.get(team=team)
    assert found.requirements == ["hipaa", "zdr"]
    [row] = found.history.all()
    assert (row.history_type, row.history_user) == ("+", admin_user)


def test_a_requirement_set_names_exactly_one_holder(admin_client, team):
    add = reverse("admin:compliance_requirementset_add")
    both = {"organization": team.organization_id, "team": team.pk, "requirements": ["gdpr"]}
    response = admin_client.post(add, both)
    assert "Choose exactly one of organization and team." in response.content.decode()
    response = admin_client.post(
        add, {"organization": team.organization_id, "requirements": ["gdpr"]}
    )
    assert response.status_code == 302
    assert RequirementSet.objects.get(organization=team.organization).requirements == ["gdpr"]
    assert not RequirementSet.objects.filter(team=team).exists()


def test_an_uploaded_document_is_served_through_the_admin_only(
    admin_client, client, agreements, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    agreement = agreements["open"]
    upload = SimpleUploadedFile("dpa-open.pdf", b"%PDF-1.4 signed", content_type="application/pdf")
    response = admin_client.post(_change(agreement), {**_form(agreement), "document": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    agreement.refresh_from_db()
    download = reverse("admin:compliance_dataprocessingagreement_document", args=[agreement.pk])
    page = admin_client.get(_change(agreement)).content.decode()
    assert download in page  # the file widget links to the download view, not to /media/
    served = admin_client.get(download)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == b"%PDF-1.4 signed"
    anonymous = client.get(download)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["location"]


def test_a_provider_s_page_and_list_show_its_agreements(admin_client, agreements):
    lapsed = agreements["lapsed"]
    AgreementFactory(provider=lapsed.provider, sub_processor="hosting", status="in_review")
    page = admin_client.get(
        reverse("admin:routing_provider_change", args=[lapsed.provider_id])
    ).content.decode()
    assert _change(lapsed) in page
    assert "the provider</a>: expired" in page
    assert "hosting</a>: in review" in page
    listing = admin_client.get(reverse("admin:routing_provider_changelist")).content.decode()
    assert "signed, expires in 20 days" in listing
    bare = ProviderFactory(name="bare")
    page = admin_client.get(reverse("admin:routing_provider_change", args=[bare.pk]))
    assert f"?provider={bare.pk}" in page.content.decode()
