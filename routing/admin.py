from django import forms
from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from infra.money import format_usd

from .capabilities import FEATURE_FIELDS, FEATURE_NAMES
from .credentials import EMPTY, Credentials
from .health_admin import DeploymentHealthMixin
from .kinds import KINDS, CredentialShape, credential_parts_in_use, credential_shape, needs_api_base
from .models import TIMEOUT_FIELDS, Deployment, Provider
from .selectors import provider_problem


def _credential_help() -> str:
    kinds = "; ".join(f"{k.value}: {k.credentials.describe()}" for k in KINDS)
    return (
        "Secret parts are write-only: leave blank to keep what is stored. Each kind takes: "
        f"{kinds}."
    )


def _credential_fields() -> dict[str, forms.Field]:
    """One form field per credential part some kind takes (routing/kinds.py)."""
    fields: dict[str, forms.Field] = {}
    for part in credential_parts_in_use():
        users = ", ".join(k.value for k in KINDS if part.name in k.credentials.names)
        if part.secret:
            # Never rendered back, not even masked.
            widget = forms.PasswordInput(render_value=False)
            help_text = f"For {users}. Leave blank to keep the stored value."
        else:
            widget, help_text = forms.TextInput(), f"For {users}."
        fields[part.name] = forms.CharField(
            required=False, strip=False, label=part.label, widget=widget, help_text=help_text
        )
    return fields


class _ProviderFormBase(forms.ModelForm):
    api_base = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=Provider._meta.get_field("api_base").help_text,
    )
    clear_credentials = forms.BooleanField(
        required=False,
        help_text="Remove the stored credential (parts typed above are then all there is).",
    )

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # None: there is a stored credential, but it cannot be decrypted.
        self.stored: Credentials | None = EMPTY
        if self.instance.pk is not None:
            try:
                self.stored = self.instance.get_credentials()
            except ValueError:
                self.stored = None
        for part in credential_parts_in_use():
            if not part.secret and self.stored:
                self.initial.setdefault(part.name, self.stored.get(part.name, ""))

    def clean(self):
        data = super().clean()
        kind = data.get("kind", "")
        if needs_api_base(kind) and not data.get("api_base"):
            self.add_error("api_base", "This kind of provider needs a base URL.")
        self.credentials = self._clean_credentials(data, credential_shape(kind))
        return data

    def _clean_credentials(self, data: dict, shape: CredentialShape | None) -> Credentials | None:
        """The credential to store, or None to keep the stored token untouched."""
        parts = credential_parts_in_use()
        typed = {p.name: data[p.name] for p in parts if data.get(p.name)}
        shown = {p.name for p in parts if not p.secret}  # prefilled: blank means removed
        if self.stored is None and not typed and not data.get("clear_credentials"):
            return None  # unreadable, and nothing asked for: the admin's row shows the problem
        base = {} if data.get("clear_credentials") or self.stored is None else dict(self.stored)
        if shape is None:  # an invalid kind has its own error
            return None
        for name in shape.unknown(set(typed)):
            if typed[name] != base.get(name):  # typed here, not just shown back
                self.add_error(name, f"Not used by this kind of provider ({shape.describe()}).")
        merged = {k: v for k, v in base.items() if k in shape.names and k not in shown}
        merged.update({k: v for k, v in typed.items() if k in shape.names})
        for name in shape.missing(set(merged)):
            self.add_error(name, "This kind of provider needs it.")
        new = Credentials(merged)
        return None if new == self.stored else new

    def save(self, commit=True):
        provider = super().save(commit=False)
        if self.credentials is not None:
            provider.set_credentials(self.credentials)
        if commit:
            provider.save()
        return provider


CAPABILITY_FIELDS = ["context_window", "max_output_tokens", *FEATURE_FIELDS.values()]

# Built from the kinds table, so a kind that takes a new part gets its field here.
ProviderForm = type(
    "ProviderForm", (_ProviderFormBase,), {"__module__": __name__, **_credential_fields()}
)


class DeploymentInline(TabularInline):
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
class ProviderAdmin(ModelAdmin):
    form = ProviderForm
    list_display = [
        "name",
        "kind",
        "api_base",
        "region",
        "has_credentials",
        "enabled",
        "routing_problem",
    ]
    list_filter = ["kind", "region", "enabled", "allow_insecure_http"]
    search_fields = ["name", "api_base"]
    readonly_fields = ["credential_parts_set", "routing_problem"]
    inlines = [DeploymentInline]

    def get_fieldsets(self, request, obj=None):
        credential = [
            "credential_parts_set",
            *(p.name for p in credential_parts_in_use()),
            "clear_credentials",
        ]
        general = [f for f in self.get_fields(request, obj) if f not in credential]
        return [
            (None, {"fields": general}),
            ("Credential", {"description": _credential_help(), "fields": credential}),
        ]

    @admin.display(boolean=True, description="Credential set")
    def has_credentials(self, obj: Provider) -> bool:
        return obj.has_credentials

    @admin.display(description="Parts stored")
    def credential_parts_set(self, obj: Provider) -> str:
        # Which parts, never their values.
        if obj.pk is None or not obj.has_credentials:
            return "none"
        try:
            return ", ".join(sorted(obj.get_credentials())) or "none"
        except ValueError:
            return "(cannot be decrypted with GATEWAY_ENCRYPTION_KEYS)"

    @admin.display(description="Left out of routing because")
    def routing_problem(self, obj: Provider) -> str:
        # The routing table's own check: what is shown here is what every web process skips.
        if obj.pk is None:
            return ""
        return provider_problem(obj) or "-"


@admin.register(Deployment)
class DeploymentAdmin(DeploymentHealthMixin, ModelAdmin):
    # What fits a 1366 px screen: prices, what it supports, on or off, and its health.
    list_display = [
        "model_name",
        "provider",
        "prices",
        "max_output_tokens",
        "capability_list",
        "effective_region",
        "enabled",
        "health_state",
    ]
    list_filter = [
        "mode",
        "enabled",
        *FEATURE_FIELDS.values(),
        "provider__kind",
        "provider",
    ]
    search_fields = ["model_name", "upstream_model", "provider__name"]
    list_select_related = ["provider", "health"]
    readonly_fields = DeploymentHealthMixin.health_fields
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
            "Routing",
            {
                "fields": ["weight", "priority"],
                "description": "How this deployment is chosen among its model's deployments, "
                "by the model group's strategy (Model groups): weight for weighted, priority "
                "(lower first) for priority.",
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
        ("Health", {"fields": DeploymentHealthMixin.health_fields}),
    ]

    @admin.display(description="$ per 1M in / out", ordering="input_cost_per_mtok")
    def prices(self, obj: Deployment) -> str:
        return f"{format_usd(obj.input_cost_per_mtok)} / {format_usd(obj.output_cost_per_mtok)}"

    @admin.display(description="Supports")
    def capability_list(self, obj: Deployment) -> str:
        # What it lacks stands out by its absence; "none" rather than an empty cell.
        found = [name for name in FEATURE_NAMES if getattr(obj, FEATURE_FIELDS[name])]
        return ", ".join(found) or "none"


from . import admin_groups  # noqa: E402, F401  (model groups and routing rules)
