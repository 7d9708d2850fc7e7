"""Writes of policies that callers other than the admin make (commands, the config loader)."""

from decimal import Decimal

from django.core.exceptions import ValidationError

from audit.context import service_action
from tenants.models import ApiKey

from .models import Policy


def key_limits_set(
    *, api_key: ApiKey, rpm: int | None, tpm: int | None, budget_usd: Decimal | None
) -> Policy | None:
    """Give a key its own RPM, TPM and monthly budget (its Policy, created or updated). Raises
    ValidationError ({field: why}) for a value above its team's (or organization's): a key's
    limits only narrow them. Nothing given: nothing written."""
    values = {"rpm": rpm, "tpm": tpm, "monthly_budget_usd": budget_usd}
    if all(v is None for v in values.values()):
        return None
    policy = Policy.objects.filter(api_key=api_key).first() or Policy(api_key=api_key)
    for name, value in values.items():
        if value is not None:
            setattr(policy, name, value)
    policy.full_clean()
    policy.save()
    return policy


def team_limits_set(
    *,
    team,
    rpm: int | None,
    tpm: int | None,
    budget_usd: Decimal | None,
    actor=None,
) -> Policy | None:
    """Set a team's own RPM, TPM and monthly budget (its Policy, created or updated), within its
    organization's: a value above the organization's raises ValidationError ({field: why}), since
    the organization's limit would bind first and the team's would only mislead. Nothing given:
    nothing written. `actor`: who, for the audit trail (else the audit context's)."""
    values = {"rpm": rpm, "tpm": tpm, "monthly_budget_usd": budget_usd}
    if all(v is None for v in values.values()):
        return None
    org = Policy.objects.filter(organization_id=team.organization_id).first()
    problems = {}
    for name, value in values.items():
        ceiling = getattr(org, name) if org is not None else None
        if value is not None and ceiling is not None and value > ceiling:
            shown = f"${ceiling:.2f}" if name == "monthly_budget_usd" else ceiling
            problems[name] = f"may not exceed {shown}, set by the organization"
    if problems:
        raise ValidationError(problems)
    policy = Policy.objects.filter(team=team).first() or Policy(team=team)
    for name, value in values.items():
        if value is not None:
            setattr(policy, name, value)
    policy.full_clean()
    with service_action("limits_set", actor=actor):
        policy.save()
    return policy
