"""The portal's forms: input parsing only. What may be written, and the rules a write must obey,
are the services' (tenants/services.py); their ValidationErrors come back onto these forms."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q

from tenants.models import Membership, Project, Team

EXPIRY_CHOICES = [("", "Never"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]
# Grace periods offered on rotation: how long the old secret keeps working.
GRACE_CHOICES = [
    ("0", "None: the old secret stops working now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
]


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the key is for, e.g. “search-api production”."
    )
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="No project"
    )
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(team=team)
        if not self.fields["project"].queryset.exists():
            del self.fields["project"]


class KeyRotateForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        choices=GRACE_CHOICES,
        coerce=int,
        initial="0",
        widget=forms.RadioSelect,
        label="Grace period for the old secret",
    )


class KeyLimitsForm(forms.Form):
    rpm = forms.IntegerField(min_value=1, required=False, label="Requests per minute")
    tpm = forms.IntegerField(min_value=1, required=False, label="Tokens per minute")
    budget_usd = forms.DecimalField(
        min_value=0, max_digits=14, decimal_places=2, required=False, label="Monthly budget (USD)"
    )

    # The services name policy fields; the form's names differ for the budget.
    FIELD_OF = {"monthly_budget_usd": "budget_usd", "rpm": "rpm", "tpm": "tpm"}

    def add_service_error(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, errors in exc.error_dict.items():
                self.add_error(self.FIELD_OF.get(name), errors)
        else:
            self.add_error(None, exc)


def _role_choices(roles: list[str]) -> list[tuple[str, str]]:
    return [(r, Membership.Role(r).label) for r in roles]


class MemberAddForm(forms.Form):
    user = forms.CharField(
        max_length=254, label="Username or email", help_text="An existing account."
    )
    role = forms.ChoiceField()

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(roles)
        self.fields["role"].initial = "member"

    def clean_user(self):
        value = self.cleaned_data["user"].strip()
        users = get_user_model().objects.filter(is_active=True)
        matches = list(users.filter(Q(username__iexact=value) | Q(email__iexact=value))[:2])
        if len(matches) != 1:
            # One message for "none" and "several": the form is no directory of accounts.
            raise ValidationError("No single active account has this username or email.")
        return matches[0]
