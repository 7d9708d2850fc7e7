"""What a team or organization may require of the providers its requests reach, and what each
requirement asks of a provider's agreements (compliance/snapshot.py applies it to routes).

    gdpr         a signed, unexpired DPA covering the deployment's region, with Standard
                 Contractual Clauses wherever the deployment is outside GDPR_NO_SCC_REGIONS
    hipaa        a signed, unexpired Business Associate Agreement
    zdr          a signed, unexpired DPA with zero data retention
    no_training  a signed, unexpired DPA with a training opt-out
"""

from django.core.exceptions import ValidationError
from django.db import models


class Requirement(models.TextChoices):
    GDPR = "gdpr", "GDPR (signed DPA; SCCs outside the EU/UK)"
    HIPAA = "hipaa", "HIPAA (signed BAA)"
    ZDR = "zdr", "Zero data retention"
    NO_TRAINING = "no_training", "No training on our data"


NAMES: tuple[str, ...] = tuple(Requirement.values)

# Where processing needs no transfer mechanism under GDPR: the EU (EEA) itself, the United
# Kingdom (adequacy decision) and the organization's own premises. A deployment anywhere else,
# or whose region is unknown, needs the agreement's SCCs. Sub-regions count with their parent
# (routing/regions.py).
GDPR_NO_SCC_REGIONS = frozenset({"eu", "uk", "on-prem"})

# What the refusal says is missing, per requirement: "... has a provider with <this>".
MISSING: dict[str, str] = {
    "gdpr": "a signed, unexpired DPA covering its region (with SCCs outside eu/uk/on-prem)",
    "hipaa": "a signed, unexpired BAA",
    "zdr": "a signed, unexpired DPA with zero data retention",
    "no_training": "a signed, unexpired DPA with a training opt-out",
}


def requirements_problem(value) -> str | None:
    """Why a list of requirement names is not accepted, or None."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"a list of requirement names ({', '.join(NAMES)})"
    unknown = [v for v in value if v not in NAMES]
    if unknown:
        return f"unknown requirement {unknown[0]!r}: use {', '.join(NAMES)}"
    return None


def validate_requirements(value) -> None:
    if problem := requirements_problem(value):
        raise ValidationError(problem)
