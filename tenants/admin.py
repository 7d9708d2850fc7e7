from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from unfold.admin import ModelAdmin, TabularInline

from .models import ApiKey, Membership, Organization, Project, Team
from .services import (
    api_key_issue,
    api_key_revoke,
    membership_add,
    membership_remove,
    membership_role_set,
)

ALLOWED_MODELS_HELP = (
    'A JSON list of public model names, e.g. ["gpt-4o-mini", "mock-small"]; ["*"] for every '
    "model. A key's list narrows its team's: empty means as the team allows."
)


class AllowedModelsForm(forms.ModelForm):
    """allowed_models is a JSON list of model names. A blank box is the empty list: the form
    field would otherwise hand the model None, which the NOT NULL column refuses."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "allowed_models" in self.fields:
            self.fields["allowed_models"].help_text = ALLOWED_MODELS_HELP

    def clean_allowed_models(self):
        value = self.cleaned_data.get("allowed_models")
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise forms.ValidationError(
                'Enter a JSON list of model names, e.g. ["small"] or ["*"].'
            )
        return value


@admin.register(Organization)
class OrganizationAdmin(ModelAdmin):
    list_display = ["name", "slug", "timezone", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(ModelAdmin):
    form = AllowedModelsForm
    list_display = ["slug", "name", "organization", "cost_center", "allowed_models", "is_active"]
    list_filter = ["is_active", "organization"]
    search_fields = ["slug", "name", "cost_center"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Project)
class ProjectAdmin(ModelAdmin):
    list_display = ["slug", "name", "team", "created_at"]
    list_filter = ["team"]
    search_fields = ["slug", "name", "team__slug"]
    list_select_related = ["team"]
    autocomplete_fields = ["team"]


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "user__email", "team__slug"]
    list_select_related = ["user", "team"]
    autocomplete_fields = ["user", "team"]

    # Through the services: they keep a team from losing its last owner or lead, and name the
    # change in the audit trail. Their ValidationError is shown like a form's.
    def save_model(self, request, obj, form, change):
        if not change:
            created = membership_add(
                team=obj.team, user=obj.user, role=obj.role, actor=request.user
            )
            obj.pk = created.pk
            return
        stored = Membership.objects.get(pk=obj.pk)
        if (stored.team_id, stored.user_id) != (obj.team_id, obj.user_id):
            raise PermissionDenied("A membership's team and user are fixed; add a new one.")
        membership_role_set(membership=stored, role=obj.role, actor=request.user)

    def delete_model(self, request, obj):
        membership_remove(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            membership_remove(membership=membership, actor=request.user)

    def get_readonly_fields(self, request, obj=None):
        return ["user", "team"] if obj is not None else []

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as refused:  # rolled back with the view's transaction
            messages.error(request, "; ".join(refused.messages))
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as refused:
            messages.error(request, "; ".join(refused.messages))
            return HttpResponseRedirect(request.get_full_path())


@admin.action(description="Revoke selected keys", permissions=["change"])
def revoke_keys(modeladmin, request, queryset):
    for api_key in queryset.filter(revoked_at__isnull=True):
        api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, "Selected keys are revoked.")


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    """Keys are issued through the service, and the secret is rendered once, in the response.

    Not through `messages`: their storage (cookie or session) would keep the secret around.
    The hash is never shown: it is not secret, but nobody needs it and it invites confusion.
    """

    # What fits a 1366 px screen: status, spend (billing adds it) and last use up front.
    list_display = ["name", "prefix", "team", "owner", "status", "last_used_at", "expires_at"]
    list_filter = [
        "team",
        ("revoked_at", admin.EmptyFieldListFilter),
        "expires_at",
        "created_at",
    ]
    search_fields = ["name", "prefix", "team__slug", "owner__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    fields = [
        "team",
        "project",
        "owner",
        "name",
        "allowed_models",
        "expires_at",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = [revoke_keys]
    list_select_related = ["team", "owner"]
    autocomplete_fields = ["team", "project", "owner"]
    form = AllowedModelsForm

    @admin.display(description="status", ordering="revoked_at")
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    def get_readonly_fields(self, request, obj=None):
        # A key stays with the team it was issued to (the model refuses the change as well).
        if obj is not None:
            return [*self.readonly_fields, "team"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        issued = api_key_issue(
            team=obj.team,
            project=obj.project,
            owner=obj.owner,
            name=obj.name,
            allowed_models=obj.allowed_models,
            actor=request.user,
        )
        if obj.expires_at:
            issued.api_key.expires_at = obj.expires_at
            issued.api_key.save(update_fields=["expires_at"])
        obj.pk = issued.api_key.pk
        request._issued_secret = issued.secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "api_key": obj,
            "secret": secret,
            "opts": self.model._meta,
            "title": "API key issued",
        }
        response = TemplateResponse(request, "admin/tenants/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response
