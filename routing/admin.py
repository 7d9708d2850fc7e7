from django import forms
from django.contrib import admin

from .capabilities import FEATURE_FIELDS, FEATURE_NAMES
from .kinds import needs_api_base
from .models import TIMEOUT_FIELDS, Deployment, Provider
from .selectors import provider_problem


class ProviderForm(forms.ModelForm):
    api_base = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=Provider._meta.get_field("api_base").help_text,
    )
    # Write-only: the stored credential is never rendered back, not even masked.
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current credential.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored credential.")

    class Meta:
        model = Provider
        fields = [
            "name",
            "kind",
            "api_base",
            "allow_insecure_http",
            "region",
            *TIMEOUT_FIELDS,
            "enabled",
        ]

    def clean(self):
        data = super().clean()
        if needs_api_base(data.get("kind", "")) and not data.get("api_base"):
            self.add_error("api_base", "This kind of provider needs a base URL.")
        return data

    def save(self, commit=True):
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.api_key_encrypted = ""
        elif self.cleaned_data.get("api_key"):
            provider.set_api_key(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


CAPABILITY_FIELDS = ["context_window", "max_output_tokens", *FEATURE_FIELDS.values()]


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = [
        "model_name",
        "upstream_model",
        "mode",
        "input_cost_per_mtok",
        "output_cost_per_mtok",
        *CAPABILITY_FIELDS,
        "region",
        "enabled",
    ]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = [
        "name",
        "kind",
        "api_base",
        "region",
        "has_api_key",
        "enabled",
        "routing_problem",
        "updated_at",
    ]
    list_filter = ["kind", "region", "enabled", "allow_insecure_http"]
    search_fields = ["name", "api_base"]
    readonly_fields = ["routing_problem"]
    inlines = [DeploymentInline]

    @admin.display(boolean=True, description="Credential set")
    def has_api_key(self, obj: Provider) -> bool:
        return obj.has_api_key

    @admin.display(description="Left out of routing because")
    def routing_problem(self, obj: Provider) -> str:
        # The routing table's own check: what is shown here is what every web process skips.
        if obj.pk is None:
            return ""
        return provider_problem(obj) or "-"


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = [
        "model_name",
        "provider",
        "upstream_model",
        "mode",
        "input_cost_per_mtok",
        "output_cost_per_mtok",
        "context_window",
        "max_output_tokens",
        "capability_list",
        "effective_region",
        "enabled",
    ]
    list_filter = [
        "mode",
        "enabled",
        *FEATURE_FIELDS.values(),
        "provider__kind",
        "provider",
    ]
    search_fields = ["model_name", "upstream_model", "provider__name"]
    list_select_related = ["provider"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "provider",
                    "model_name",
                    "upstream_model",
                    "mode",
                    "input_cost_per_mtok",
                    "output_cost_per_mtok",
                    "region",
                    "enabled",
                ]
            },
        ),
        (
            "Capabilities",
            {
                "fields": CAPABILITY_FIELDS,
                "description": "What this model can do. A request that needs a feature "
                "goes only to deployments of its model that have it, and is refused with 400 "
                "when none has. Untick what the model lacks.",
            },
        ),
        ("Timeouts (empty: the provider's)", {"fields": list(TIMEOUT_FIELDS)}),
    ]

    @admin.display(description="Supports")
    def capability_list(self, obj: Deployment) -> str:
        # What it lacks stands out by its absence; "none" rather than an empty cell.
        found = [name for name in FEATURE_NAMES if getattr(obj, FEATURE_FIELDS[name])]
        return ", ".join(found) or "none"
