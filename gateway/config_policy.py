"""Configuration of policies: `organizations:`, and `policy:` / `model_limits:` blocks.

A `policy:` block (on an organization, a team or a project) is that level's whole policy: a
field it leaves out is set to its default (no restriction, no limit), so the file says
everything. Leaving the block out leaves any existing policy alone (one made in the admin, say);
nothing is ever deleted. `model_limits:` upserts the models it lists and leaves others alone.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from policies.models import (
    FEATURES,
    RULE_FIELDS,
    BudgetMode,
    MaxTokensMode,
    ModelLimit,
    Policy,
    PrivacyMode,
    pii_patterns_problem,
)
from routing.models import Provider
from routing.regions import vocabulary_problem
from tenants.models import Organization, default_tag_keys

from . import config_reading as read
from .config_compliance import apply_requirements, read_requirements
from .config_reading import Problems

# Every Policy field the file may set, by its name on the model.
POLICY_FIELDS = frozenset({*RULE_FIELDS, "alert_webhook_url"})
ORGANIZATION_FIELDS = frozenset(
    {"slug", "name", "timezone", "allowed_tag_keys", "policy", "model_limits"}
    | {"compliance"}  # gateway/config_compliance.py
)
_POSITIVE = ("max_tokens", "rpm", "tpm", "user_rpm", "user_tpm")
_CHOICES = {
    "max_tokens_mode": MaxTokensMode,
    "budget_mode": BudgetMode,
}
_WEBHOOK = URLValidator(schemes=["https", "http"])


def _positive(item: dict, name: str, where: str, run: Problems) -> int | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        run.error(f"{where}.{name}", f"must be a whole number >= 1, not {value!r}")
        return None
    return value


def _choice(item: dict, name: str, choices, where: str, run: Problems) -> str:
    value = item.get(name, choices.values[0])
    if value not in choices.values:
        run.error(f"{where}.{name}", f"{value!r} is not one of {', '.join(choices.values)}")
        return choices.values[0]
    return value


def _flag(item: dict, name: str, where: str, run: Problems) -> bool:
    value = item.get(name, False)
    if not isinstance(value, bool):
        run.error(f"{where}.{name}", f"must be true or false, not {value!r}")
        return False
    return value


def _names(
    item: dict, name: str, where: str, run: Problems, known: set[str] | None = None, what=""
) -> list[str] | None:
    """A list of names (None when left out: no restriction); each checked against `known`."""
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        run.error(f"{where}.{name}", "must be a list of names")
        return None
    if known is not None:
        for index, entry in enumerate(value):
            if entry != "*" and entry not in known:
                run.error(
                    f"{where}.{name}[{index}]",
                    f"{entry!r} names no {what}{read.known(sorted(known))}",
                )
    return value


def _features(item: dict, where: str, run: Problems) -> list[str] | None:
    value = _names(item, "allowed_features", where, run)
    for index, entry in enumerate(value or ()):
        if entry not in FEATURES:
            run.error(
                f"{where}.allowed_features[{index}]",
                f"{entry!r} is not one of {', '.join(FEATURES)}",
            )
    return value


def _regions(item: dict, where: str, run: Problems) -> list[str] | None:
    value = _names(item, "allowed_regions", where, run)
    for index, entry in enumerate(value or ()):
        if problem := vocabulary_problem(entry):
            run.error(f"{where}.allowed_regions[{index}]", problem)
    return value


def _texts(item: dict, name: str, where: str, run: Problems) -> list[str]:
    value = item.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        run.error(f"{where}.{name}", "must be a list of non-empty texts")
        return []
    return value


def _pii_patterns(item: dict, where: str, run: Problems) -> dict[str, str] | None:
    value = item.get("pii_patterns")
    if value is None or value == {}:
        return None
    if problem := pii_patterns_problem(value):
        run.error(f"{where}.pii_patterns", problem)
        return None
    return value


def _thresholds(item: dict, where: str, run: Problems) -> list:
    value = item.get("alert_thresholds") or []
    if not isinstance(value, list):
        run.error(f"{where}.alert_thresholds", "must be a list of percentages, e.g. [50, 80, 100]")
        return []
    for index, entry in enumerate(value):
        if isinstance(entry, bool) or not isinstance(entry, int | float) or not 0 < entry <= 1000:
            run.error(
                f"{where}.alert_thresholds[{index}]",
                f"must be a percentage above 0 (at most 1000), not {entry!r}",
            )
    if len(set(value)) != len(value):
        run.error(f"{where}.alert_thresholds", "lists a threshold twice")
    return value


def _emails(item: dict, where: str, run: Problems) -> list[str]:
    value = item.get("alert_emails") or []
    if not isinstance(value, list):
        run.error(f"{where}.alert_emails", "must be a list of email addresses")
        return []
    for index, entry in enumerate(value):
        try:
            validate_email(entry)
        except (ValidationError, TypeError):
            run.error(f"{where}.alert_emails[{index}]", f"{entry!r} is not an email address")
    return value


def _webhook(item: dict, where: str, run: Problems) -> str:
    value = item.get("alert_webhook_url") or ""
    if not isinstance(value, str):
        run.error(f"{where}.alert_webhook_url", "must be a URL")
        return ""
    if value:
        try:
            _WEBHOOK(value)
        except ValidationError:
            # Never the value itself: a webhook URL is a secret.
            run.error(f"{where}.alert_webhook_url", "not an http(s) URL")
            return ""
    return value


def _budget(item: dict, where: str, run: Problems) -> Decimal | None:
    if item.get("monthly_budget_usd") is None:
        return None
    return read.price(item, "monthly_budget_usd", where, run)


def read_policy(block, where: str, run) -> dict | None:
    """The Policy field values of a `policy:` block (every field: left out is the default), or
    None when the block is absent or broken (its errors recorded)."""
    if block is None:
        return None
    if not isinstance(block, dict):
        run.error(where, "must be a mapping of policy fields")
        return None
    failed = run.check()
    read.check_keys(block, POLICY_FIELDS, frozenset(), where, run)
    providers = run.file_providers | set(Provider.objects.values_list("name", flat=True))
    values = {
        "allowed_models": _names(block, "allowed_models", where, run, run.known_models, "model"),
        **{name: _positive(block, name, where, run) for name in _POSITIVE},
        **{name: _choice(block, name, choices, where, run) for name, choices in _CHOICES.items()},
        "allowed_features": _features(block, where, run),
        "blocked_terms": _texts(block, "blocked_terms", where, run),
        "monthly_budget_usd": _budget(block, where, run),
        "budget_clamp": _flag(block, "budget_clamp", where, run),
        "allowed_providers": _names(block, "allowed_providers", where, run, providers, "provider"),
        "allowed_regions": _regions(block, where, run),
        "privacy_mode": "",
        # Left out: inherit (a level above may turn it on); false does not turn one off.
        "scrub_prompts": (
            None
            if block.get("scrub_prompts") is None
            else _flag(block, "scrub_prompts", where, run)
        ),
        "pii_patterns": _pii_patterns(block, where, run),
        "alert_thresholds": _thresholds(block, where, run),
        "alert_emails": _emails(block, where, run),
        "alert_webhook_url": _webhook(block, where, run),
    }
    if block.get("privacy_mode") is not None:
        values["privacy_mode"] = _choice(block, "privacy_mode", PrivacyMode, where, run)
    return None if failed() else values


def apply_policy(values: dict | None, owner: str, target, label: str, where: str, run) -> None:
    """Upsert the policy of `target` (its `owner` field: organization, team or project)."""
    if values is None:
        return
    policy = Policy.objects.filter(**{owner: target}).first()
    created = policy is None
    policy = policy or Policy(**{owner: target})
    changes = []
    for name, new in values.items():
        old = getattr(policy, name)
        if old != new:
            setattr(policy, name, new)
            # The webhook URL is a secret: named, never shown.
            changes.append(name if name == "alert_webhook_url" else f"{name} {old!r} -> {new!r}")
    if (created or changes) and read.full_clean(policy, where, run):
        read.save(policy, where, run)
    run.report.record(f"policy of {label}", created, [] if created else changes)


def read_model_limits(item: dict, where: str, run) -> dict[str, dict] | None:
    block = item.get("model_limits")
    if block is None:
        return None
    where = f"{where}.model_limits"
    if not isinstance(block, dict):
        run.error(where, "must map model names to {rpm, tpm}")
        return None
    found = {}
    for model, limits in block.items():
        mwhere = f"{where}.{model}"
        if str(model) not in run.known_models:
            run.error(mwhere, f"{model!r} names no model{read.known(sorted(run.known_models))}")
            continue
        if not isinstance(limits, dict):
            run.error(mwhere, "must be a mapping with rpm, tpm or both")
            continue
        failed = run.check()
        read.check_keys(limits, frozenset({"rpm", "tpm"}), frozenset(), mwhere, run)
        values = {name: _positive(limits, name, mwhere, run) for name in ("rpm", "tpm")}
        if not failed() and values["rpm"] is None and values["tpm"] is None:
            run.error(mwhere, "sets neither rpm nor tpm")
        if not failed():
            found[str(model)] = values
    return found


def apply_model_limits(limits: dict | None, owner: str, target, label: str, where: str, run):
    for model, values in (limits or {}).items():
        limit = ModelLimit.objects.filter(**{owner: target, "model": model}).first()
        created = limit is None
        limit = limit or ModelLimit(**{owner: target, "model": model})
        changes = []
        for name, new in values.items():
            old = getattr(limit, name)
            if old != new:
                setattr(limit, name, new)
                changes.append(f"{name} {old!r} -> {new!r}")
        if created or changes:
            mwhere = f"{where}.model_limits.{model}"
            if read.full_clean(limit, mwhere, run):
                read.save(limit, mwhere, run)
        run.report.record(f"model limit {model} in {label}", created, [] if created else changes)


def load_organization(path: str, item: dict, run) -> None:
    """An `organizations:` entry: the organization itself, its policy and model limits."""
    where = read.label(path, item, "slug")
    failed = run.check()
    item = read.interpolate(item, where, run)
    read.check_keys(item, ORGANIZATION_FIELDS, frozenset({"slug"}), where, run)
    slug = read.text(item, "slug", where, run)
    values = {
        "name": read.text(item, "name", where, run, default=slug.replace("-", " ").title()),
        "timezone": read.text(item, "timezone", where, run, default="UTC"),
        # Checked by the model's validator (full_clean below), as in the admin.
        "allowed_tag_keys": item.get("allowed_tag_keys", default_tag_keys()),
    }
    policy = read_policy(item.get("policy"), f"{where}.policy", run)
    limits = read_model_limits(item, where, run)
    requirements = read_requirements(item, where, run)
    if failed():
        return
    org = Organization.objects.filter(slug=slug).first()
    created = org is None
    org = org or Organization(slug=slug)
    changes = []
    for name, new in values.items():
        if getattr(org, name) != new:
            changes.append(f"{name} {getattr(org, name)!r} -> {new!r}")
            setattr(org, name, new)
    if (created or changes) and read.full_clean(org, where, run):
        read.save(org, where, run)
    run.organizations.add(slug)  # teams naming it do not record it again
    run.report.record(f"organization {slug}", created, [] if created else changes)
    if org.pk is None:
        return
    apply_policy(policy, "organization", org, f"organization {slug}", f"{where}.policy", run)
    apply_model_limits(limits, "organization", org, f"organization {slug}", where, run)
    apply_requirements(requirements, "organization", org, run.report.record)
