"""Writes of policies that callers other than the admin make (commands, the config loader)."""

from decimal import Decimal

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
