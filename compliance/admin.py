"""The compliance registry in the admin: agreements (with their standing today, filters for
what lapsed or is about to), requirement sets, and each object's history (SimpleHistoryAdmin:
the History button lists every change, who made it and from where).

Requirements are also edited on the organization's and the team's own pages (an inline), and a
provider's page and list show its agreements' standing; tenants and routing must not import
compliance, so their admin classes are subclassed here, as policies does, and registered again
in their place.
"""

import datetime

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, StackedInline

from routing.models import Provider
from routing.regions import VOCABULARY
from tenants.models import Organization, Team

from .models import DataProcessingAgreement, RequirementSet
from .requirements import Requirement

EXPIRING_DAYS = 30  # "expiring soon" in the list filter


class _Document:
    """What the file widget shows of a stored document: its name, linked to the download view
    (documents are not public media)."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def __str__(self) -> str:
        return self.name


class DocumentInput(forms.ClearableFileInput):
    download_url = ""

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        if context["widget"]["is_initial"] and self.download_url:
            context["widget"]["value"] = _Document(str(value), self.download_url)
        return context


def _split_names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]


class AgreementForm(forms.ModelForm):
    regions = forms.MultipleChoiceField(
        choices=[(r, r) for r in VOCABULARY],
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 10}),
        help_text="Regions the agreement covers; none selected: wherever the provider processes.",
    )
    document_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text="Or a link to it."
    )
    sub_processors = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line (or separated by commas).",
    )

    class Meta:
        model = DataProcessingAgreement
        fields = [
            "provider",
            "sub_processor",
            "status",
            "signed_on",
            "expires_on",
            "document",
            "document_url",
            "retention_days",
            "zero_data_retention",
            "training_opt_out",
            "scc",
            "regions",
            "sub_processors",
            "baa",
            "baa_signed_on",
            "baa_expires_on",
            "owner",
            "last_reviewed_on",
            "next_review_on",
            "notes",
        ]
        widgets = {"document": DocumentInput}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["sub_processors"] = "\n".join(self.instance.sub_processors or ())
        # A read-only viewer (auditor) gets a form without fields: no widget to dress.
        if self.instance.pk and "document" in self.fields:
            widget = self.fields["document"].widget
            widget.download_url = reverse(
                "admin:compliance_dataprocessingagreement_document", args=[self.instance.pk]
            )

    def clean_sub_processors(self) -> list[str]:
        return _split_names(self.cleaned_data.get("sub_processors") or "")


class StandingFilter(admin.SimpleListFilter):
    title = "standing today"
    parameter_name = "standing"

    def lookups(self, request, model_admin):
        return [
            ("valid", "signed, in force"),
            ("expiring", f"signed, expires within {EXPIRING_DAYS} days"),
            ("lapsed", "expired or terminated"),
            ("unsigned", "not signed (none, in review)"),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        soon = today + datetime.timedelta(days=EXPIRING_DAYS)
        signed = queryset.filter(status=DataProcessingAgreement.Status.SIGNED)
        in_force = signed.exclude(expires_on__lte=today)
        match self.value():
            case "valid":
                return in_force
            case "expiring":
                return in_force.filter(expires_on__lte=soon)
            case "lapsed":
                return queryset.filter(
                    status__in=[
                        DataProcessingAgreement.Status.EXPIRED,
                        DataProcessingAgreement.Status.TERMINATED,
                    ]
                ) | signed.filter(expires_on__lte=today)
            case "unsigned":
                return queryset.filter(
                    status__in=[
                        DataProcessingAgreement.Status.NONE,
                        DataProcessingAgreement.Status.IN_REVIEW,
                    ]
                )
        return queryset


@admin.register(DataProcessingAgreement)
class AgreementAdmin(SimpleHistoryAdmin, ModelAdmin):
    form = AgreementForm
    list_display = [
        "party",
        "agreement",
        "baa_status",
        "scc",
        "zero_data_retention",
        "training_opt_out",
        "retention",
        "region_list",
        "owner",
        "next_review_on",
        "document_link",
    ]
    list_filter = [
        StandingFilter,
        "status",
        "baa",
        "scc",
        "zero_data_retention",
        "training_opt_out",
        "provider",
    ]
    search_fields = ["provider__name", "sub_processor", "owner", "notes", "sub_processors"]
    list_select_related = ["provider"]
    autocomplete_fields = ["provider"]
    fieldsets = [
        (None, {"fields": ["provider", "sub_processor", "status", "signed_on", "expires_on"]}),
        ("Document", {"fields": ["document", "document_url"]}),
        (
            "Terms",
            {
                "fields": [
                    "retention_days",
                    "zero_data_retention",
                    "training_opt_out",
                    "scc",
                    "regions",
                    "sub_processors",
                ]
            },
        ),
        ("HIPAA", {"fields": ["baa", "baa_signed_on", "baa_expires_on"]}),
        ("Review", {"fields": ["owner", "last_reviewed_on", "next_review_on", "notes"]}),
    ]

    @admin.display(description="agreement", ordering="expires_on")
    def agreement(self, obj: DataProcessingAgreement) -> str:
        return obj.standing(timezone.localdate())

    @admin.display(description="BAA", ordering="baa_expires_on")
    def baa_status(self, obj: DataProcessingAgreement) -> str:
        return obj.baa_standing(timezone.localdate())

    @admin.display(description="retention", ordering="retention_days")
    def retention(self, obj: DataProcessingAgreement) -> str:
        return "-" if obj.retention_days is None else f"{obj.retention_days} days"

    @admin.display(description="regions")
    def region_list(self, obj: DataProcessingAgreement) -> str:
        return ", ".join(obj.regions or ()) or "any"

    @admin.display(description="document")
    def document_link(self, obj: DataProcessingAgreement):
        if obj.document:
            url = reverse("admin:compliance_dataprocessingagreement_document", args=[obj.pk])
            return format_html('<a href="{}">download</a>', url)
        if obj.document_url:
            return format_html('<a href="{}" rel="noreferrer">link</a>', obj.document_url)
        return "-"

    def get_urls(self):
        view = self.admin_site.admin_view(self.document_view)
        own = [path("<int:pk>/document/", view, name="compliance_dataprocessingagreement_document")]
        return own + super().get_urls()

    def document_view(self, request, pk: int):
        """The uploaded document, to those who may view the agreement."""
        agreement = get_object_or_404(DataProcessingAgreement, pk=pk)
        if not self.has_view_permission(request, agreement):
            raise PermissionDenied
        if not agreement.document:
            raise Http404("no document uploaded")
        try:
            handle = agreement.document.open("rb")
        except FileNotFoundError as exc:
            raise Http404("the document file is missing") from exc
        name = agreement.document.name.rsplit("/", 1)[-1]
        return FileResponse(handle, as_attachment=True, filename=name)


class RequirementsForm(forms.ModelForm):
    requirements = forms.MultipleChoiceField(
        choices=Requirement.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="A team also carries its organization's requirements.",
    )

    class Meta:
        model = RequirementSet
        fields = ["organization", "team", "requirements", "notes"]

    def clean(self):
        cleaned = super().clean()
        # Inlines set the owner themselves; the standalone page must name exactly one.
        standalone = "organization" in self.fields and "team" in self.fields
        if standalone and bool(cleaned.get("organization")) == bool(cleaned.get("team")):
            raise ValidationError("Choose exactly one of organization and team.")
        return cleaned


@admin.register(RequirementSet)
class RequirementSetAdmin(SimpleHistoryAdmin, ModelAdmin):
    form = RequirementsForm
    list_display = ["holder", "requirement_list", "updated_at"]
    list_filter = [("team", admin.EmptyFieldListFilter), "updated_at"]
    search_fields = ["organization__slug", "team__slug", "requirements", "notes"]
    list_select_related = ["organization", "team"]
    autocomplete_fields = ["organization", "team"]

    @admin.display(description="requirements")
    def requirement_list(self, obj: RequirementSet) -> str:
        return ", ".join(obj.requirements or ()) or "none"


class RequirementsInline(StackedInline):
    model = RequirementSet
    form = RequirementsForm
    fields = ["requirements", "notes"]
    extra = 1
    max_num = 1
    can_delete = True
    verbose_name = verbose_name_plural = "compliance requirements"


# --- tenants' pages (as registered by now, policies' inlines included), with the inline -------


def _with_inline(model) -> None:
    base = type(admin.site._registry[model])
    subclass = type(base.__name__, (base,), {"inlines": [*base.inlines, RequirementsInline]})
    admin.site.unregister(model)
    admin.site.register(model, subclass)


_with_inline(Organization)
_with_inline(Team)


class _ProviderAgreements:
    """What a provider's page and list say of its agreements (read-only; edited above)."""

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("agreements")

    @admin.display(description="Agreements")
    def compliance_agreements(self, obj: Provider):
        if obj.pk is None:
            return "-"
        today = timezone.localdate()
        rows = [
            format_html(
                '<a href="{}">{}</a>: {}',
                reverse("admin:compliance_dataprocessingagreement_change", args=[a.pk]),
                a.sub_processor or "the provider",
                a.standing(today),
            )
            for a in obj.agreements.all()
        ]
        if not rows:
            add = reverse("admin:compliance_dataprocessingagreement_add")
            return format_html('none (<a href="{}?provider={}">add one</a>)', add, obj.pk)
        return format_html("<br>".join(["{}"] * len(rows)), *rows)

    @admin.display(description="agreement")
    def agreement_standing(self, obj: Provider) -> str:
        found = next((a for a in obj.agreements.all() if not a.sub_processor), None)
        return found.standing(timezone.localdate()) if found else "none"


def _with_agreements(model) -> None:
    base = type(admin.site._registry[model])
    subclass = type(
        base.__name__,
        (_ProviderAgreements, base),
        {
            "readonly_fields": [*base.readonly_fields, "compliance_agreements"],
            "list_display": [*base.list_display, "agreement_standing"],
        },
    )
    admin.site.unregister(model)
    admin.site.register(model, subclass)


_with_agreements(Provider)


# Registers the reminder and report pages (their own modules, to keep this one short).
from . import admin_reminders, admin_report  # noqa: E402, F401
