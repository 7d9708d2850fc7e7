"""Policies in the admin: their own list, and inlines on the pages of what they attach to.

tenants must not import policies (the layers), so the inlines are added here: tenants' admin
classes are subclassed with the inlines and registered again in their place.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.html import format_html
from unfold.admin import ModelAdmin, StackedInline, TabularInline

from infra.money import format_usd
from routing.regions import vocabulary_problem
from tenants import admin as tenants_admin
from tenants.models import ApiKey, Organization, Project, Team

from .models import (
    FEATURES,
    LEVELS,
    PRIVACY_ORDER,
    RULE_FIELDS,
    ModelLimit,
    Policy,
    PrivacyMode,
    pii_patterns_problem,
)

_NAME_LISTS = ("allowed_models", "allowed_features", "allowed_providers", "allowed_regions")


def _names(value, field: str) -> list[str] | None:
    if value in (None, []):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f'Enter a JSON list of names, e.g. ["a", "b"] ({field}).')
    return value


_FORM_HELP = {
    "alert_thresholds": "Percentages of the monthly budget that send an alert, e.g. [50, 80, 100].",
    "alert_emails": 'Who gets budget alerts: a JSON list, e.g. ["finops@example.com"].',
    "allowed_providers": 'Provider names, e.g. ["openai-eu"]; empty: no restriction here.',
    "allowed_regions": 'Regions, e.g. ["eu"]; empty: no restriction here.',
}


class PolicyForm(forms.ModelForm):
    """The webhook URL is a secret: write-only. The form says whether one is stored, never
    which; a typed URL replaces it, the box clears it, a blank field keeps it."""

    alert_webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Alert webhook URL",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    clear_alert_webhook_url = forms.BooleanField(
        required=False, label="Clear the stored webhook URL"
    )

    class Meta:
        model = Policy
        fields = [*LEVELS, *RULE_FIELDS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        stored = "set" if self.instance.alert_webhook_encrypted else "not set"
        self.fields[
            "alert_webhook_url"
        ].help_text = f"Currently {stored}. Slack-compatible; write-only: leave blank to keep it."
        # Help on the JSON boxes the model leaves without (a form-level text needs no migration).
        for name, text in _FORM_HELP.items():
            if name in self.fields and not self.fields[name].help_text:
                self.fields[name].help_text = text

    def _clean_names(self, field: str) -> list[str] | None:
        return _names(self.cleaned_data.get(field), field)

    def clean_allowed_models(self):
        return self._clean_names("allowed_models")

    def clean_allowed_providers(self):
        return self._clean_names("allowed_providers")

    def clean_allowed_regions(self):
        value = self._clean_names("allowed_regions")
        problems = [p for name in value or () if (p := vocabulary_problem(name))]
        if problems:
            raise ValidationError("; ".join(problems))
        return value

    def clean_allowed_features(self):
        value = self._clean_names("allowed_features")
        unknown = sorted(set(value or ()) - set(FEATURES))
        if unknown:
            raise ValidationError(
                f"Unknown: {', '.join(unknown)}. Features are {', '.join(FEATURES)}."
            )
        return value

    def clean_blocked_terms(self):
        # A blank box is the empty list: the column is NOT NULL.
        value = self.cleaned_data.get("blocked_terms") or []
        if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
            raise ValidationError('Enter a JSON list of terms, e.g. ["project falcon"].')
        return value

    def clean_pii_patterns(self):
        value = self.cleaned_data.get("pii_patterns") or None  # a blank box or {}: none
        problem = pii_patterns_problem(value)
        if problem:
            raise ValidationError(problem)
        return value

    def clean_alert_thresholds(self):
        value = self.cleaned_data.get("alert_thresholds") or []
        if not isinstance(value, list) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 1000 for t in value
        ):
            raise ValidationError("Enter a JSON list of percentages, e.g. [50, 80, 100].")
        return value

    def clean_alert_emails(self):
        value = self.cleaned_data.get("alert_emails") or []
        if not isinstance(value, list):
            raise ValidationError('Enter a JSON list of addresses, e.g. ["a@example.com"].')
        for email in value:
            try:
                validate_email(email)
            except (ValidationError, TypeError):
                raise ValidationError(f"{email!r} is not an email address.") from None
        return value

    def save(self, commit=True):
        policy = super().save(commit=False)
        if self.cleaned_data.get("clear_alert_webhook_url"):
            policy.alert_webhook_url = ""
        elif self.cleaned_data.get("alert_webhook_url"):
            policy.alert_webhook_url = self.cleaned_data["alert_webhook_url"]
        if commit:
            policy.save()
            self._save_m2m()
        return policy


_FIELDSETS = [
    ("Per request", {"fields": RULE_FIELDS[:5]}),
    ("Budget and limits", {"fields": RULE_FIELDS[5:12]}),
    ("Routes and privacy", {"fields": RULE_FIELDS[12:17]}),
    (
        "Budget alerts",
        {"fields": [*RULE_FIELDS[17:], "alert_webhook_url", "clear_alert_webhook_url"]},
    ),
]


def privacy_badge(mode: str):
    """A privacy mode for a list column; `full` (content stored as sent) stands out, as the
    opt-in it is."""
    if mode == PrivacyMode.FULL:
        return format_html(
            '<strong class="privacy-full" style="color:#fff;background:#ba2121;'
            'padding:1px 6px;border-radius:3px">{}</strong>',
            "FULL CONTENT",
        )
    return mode or "-"


@admin.register(Policy)
class PolicyAdmin(ModelAdmin):
    form = PolicyForm
    fieldsets = [("Attached to", {"fields": list(LEVELS)}), *_FIELDSETS]
    list_display = [
        "__str__",
        "level",
        "budget",
        "rpm",
        "tpm",
        "budget_mode",
        "privacy",
        "scrub_prompts",
        "updated_at",
    ]
    list_filter = ["budget_mode", "max_tokens_mode", "privacy_mode", "scrub_prompts"]
    search_fields = ["organization__slug", "team__slug", "project__slug", "api_key__name"]
    list_select_related = ["organization", "team", "project__team", "api_key"]
    autocomplete_fields = list(LEVELS)

    @admin.display(description="level")
    def level(self, policy: Policy) -> str:
        return policy.attached_to()[0]

    @admin.display(description="monthly budget", ordering="monthly_budget_usd")
    def budget(self, policy: Policy) -> str:
        if policy.monthly_budget_usd is None:
            return "-"
        return f"{format_usd(policy.monthly_budget_usd)} ({policy.budget_mode})"

    @admin.display(description="privacy mode", ordering="privacy_mode")
    def privacy(self, policy: Policy):
        return privacy_badge(policy.privacy_mode)


class PolicyInline(StackedInline):
    """The policy of the page's organization, team, project or key (at most one)."""

    model = Policy
    form = PolicyForm
    fieldsets = _FIELDSETS
    extra = 1
    max_num = 1
    verbose_name_plural = "policy"


class ModelLimitInline(TabularInline):
    model = ModelLimit
    fields = ["model", "rpm", "tpm"]
    extra = 0


# --- tenants' pages, with the inlines ------------------------------------------------------------


def _reregister(model, base: type[ModelAdmin], *inlines, **attrs) -> None:
    subclass = type(base.__name__, (base,), {"inlines": [*base.inlines, *inlines], **attrs})
    admin.site.unregister(model)
    admin.site.register(model, subclass)


def _mode_of(owner) -> str:
    # A missing reverse one-to-one raises an AttributeError subclass: getattr's default.
    policy = getattr(owner, "policy", None)
    return policy.privacy_mode if policy is not None else ""


@admin.display(description="privacy mode")
def team_privacy(modeladmin, team: Team):
    """The mode the team's own traffic gets from its organization's and its own policy (the
    most private set wins; a project or key may only be more private still)."""
    modes = [m for m in (_mode_of(team), _mode_of(team.organization)) if m in PRIVACY_ORDER]
    return privacy_badge(min(modes, key=PRIVACY_ORDER.index) if modes else PRIVACY_ORDER[0])


def _team_queryset(modeladmin, request):
    return ModelAdmin.get_queryset(modeladmin, request).select_related(
        "organization__policy", "policy"
    )


_reregister(Organization, tenants_admin.OrganizationAdmin, PolicyInline, ModelLimitInline)
_reregister(
    Team,
    tenants_admin.TeamAdmin,
    PolicyInline,
    ModelLimitInline,
    list_display=[*tenants_admin.TeamAdmin.list_display, "privacy"],
    privacy=team_privacy,
    get_queryset=_team_queryset,
)
_reregister(Project, tenants_admin.ProjectAdmin, PolicyInline)
_reregister(ApiKey, tenants_admin.ApiKeyAdmin, PolicyInline)
