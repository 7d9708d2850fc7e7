"""Declarative configuration: upsert providers, models and teams from a YAML document.

Idempotent: loading the same file twice changes nothing the second time, and every run says
what it created or changed. It never deletes. The whole file applies in one transaction, or not
at all. `${NAME}` is replaced by the environment variable NAME at load time; a missing variable
is an error, never an empty string.
"""

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from routing.models import TIMEOUT_FIELDS, Deployment, Provider
from routing.providers import known_kinds, needs_api_base
from tenants.models import Organization, Project, Team

from .config_timeouts import DEPLOYMENT_DEFAULTS, PROVIDER_DEFAULTS, read_timeouts

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_ORG = "default"


class ConfigError(ValueError):
    pass


@dataclass
class ConfigReport:
    lines: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def record(self, label: str, created: bool, changes: list[str]) -> None:
        if created:
            self.created += 1
            self.lines.append(f"created   {label}")
        elif changes:
            self.updated += 1
            self.lines.append(f"updated   {label}: {', '.join(changes)}")
        else:
            self.unchanged += 1

    def summary(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def _interpolate(value, where: str):
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _section(doc: dict, name: str) -> list[dict]:
    items = doc.get(name) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"'{name}' must be a list of mappings")
    return items


# Every field the file may contain, per level (docs/configuration.md documents each one).
FIELDS: dict[str, frozenset[str]] = {
    "providers": frozenset(
        {
            "name",
            "kind",
            "api_base",
            "allow_insecure_http",
            "api_key",
            "region",
            "timeout_s",
            "enabled",
            *TIMEOUT_FIELDS,
        }
    ),
    "models": frozenset({"name", "mode", "deployments"}),
    "deployments": frozenset(
        {
            "provider",
            "model",
            "input_cost_per_mtok",
            "output_cost_per_mtok",
            "context_window",
            "region",
            "enabled",
            *TIMEOUT_FIELDS,
        }
    ),
    "teams": frozenset(
        {"slug", "name", "organization", "cost_center", "allowed_models", "is_active", "projects"}
    ),
    "projects": frozenset({"slug", "name"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "providers": frozenset({"name", "kind"}),
    "models": frozenset({"name", "deployments"}),
    "deployments": frozenset({"provider", "model"}),
    "teams": frozenset({"slug"}),
    "projects": frozenset({"slug"}),
}


def _check_keys(item: dict, level: str, where: str) -> None:
    allowed, required = FIELDS[level], REQUIRED[level]
    unknown = set(item) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = required - set(item)
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(sorted(missing))}")


def _price(value, where: str) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: not a number: {value!r}") from exc
    if not price.is_finite():
        raise ConfigError(f"{where}: not a number: {value!r}")
    if price < 0 or price != price.quantize(Decimal("0.000001")):
        raise ConfigError(f"{where}: must be >= 0 with at most 6 decimals")
    return price


def _number(value, cast, where: str, name: str):
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name} is not a number: {value!r}") from exc


def _timeouts(item: dict, where: str, defaults: dict, *, legacy: bool = False) -> dict:
    values, problems = read_timeouts(item, defaults, legacy=legacy)
    if problems:
        name, message = problems[0]
        raise ConfigError(f"{where}: {name}: {message}")
    return values


def _full_clean(obj, where: str) -> None:
    """The model's own validation (slugs, URLs, minimums) as a ConfigError naming the item."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        details = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
        raise ConfigError(f"{where}: {details}") from exc


def _apply(obj, values: dict, secret_fields: frozenset[str] = frozenset()) -> list[str]:
    """Set changed attributes; describe each change (secrets by name only)."""
    changes = []
    for name, new in values.items():
        old = getattr(obj, name)
        if old != new:
            setattr(obj, name, new)
            changes.append(name if name in secret_fields else f"{name} {old!r} -> {new!r}")
    return changes


def _load_provider(item: dict, report: ConfigReport) -> None:
    where = f"provider {item.get('name', '?')}"
    _check_keys(item, "providers", where)
    if item["kind"] not in known_kinds():
        raise ConfigError(f"{where}: kind must be one of {', '.join(known_kinds())}")
    if needs_api_base(item["kind"]) and not item.get("api_base"):
        raise ConfigError(f"{where}: {item['kind']} providers need api_base")
    provider = Provider.objects.filter(name=item["name"]).first()
    created = provider is None
    provider = provider or Provider(name=item["name"])
    changes = _apply(
        provider,
        {
            "kind": item["kind"],
            "api_base": item.get("api_base", "") or "",
            "allow_insecure_http": bool(item.get("allow_insecure_http", False)),
            "region": item.get("region", "") or "",
            **_timeouts(item, where, PROVIDER_DEFAULTS, legacy=True),
            "enabled": bool(item.get("enabled", True)),
        },
    )
    api_key = item.get("api_key", "") or ""
    if api_key != (provider.get_api_key() if provider.api_key_encrypted else ""):
        provider.set_api_key(api_key)
        changes.append("api_key")
    if created or changes:
        _full_clean(provider, where)
        provider.save()
    report.record(where, created, [] if created else changes)


def _load_model(item: dict, report: ConfigReport) -> None:
    where = f"model {item.get('name', '?')}"
    _check_keys(item, "models", where)
    mode = item.get("mode", Deployment.Mode.CHAT)
    if mode not in Deployment.Mode.values:
        raise ConfigError(f"{where}: mode must be one of {', '.join(Deployment.Mode.values)}")
    for index, dep in enumerate(_section(item, "deployments")):
        dwhere = f"{where} deployment {index}"
        _check_keys(dep, "deployments", dwhere)
        provider = Provider.objects.filter(name=dep["provider"]).first()
        if provider is None:
            raise ConfigError(f"{dwhere}: unknown provider {dep['provider']!r}")
        deployment = Deployment.objects.filter(
            provider=provider, model_name=item["name"], upstream_model=dep["model"]
        ).first()
        created = deployment is None
        deployment = deployment or Deployment(
            provider=provider, model_name=item["name"], upstream_model=dep["model"]
        )
        window = dep.get("context_window")
        changes = _apply(
            deployment,
            {
                "mode": mode,
                "input_cost_per_mtok": _price(dep.get("input_cost_per_mtok", 0), dwhere),
                "output_cost_per_mtok": _price(dep.get("output_cost_per_mtok", 0), dwhere),
                "context_window": (
                    _number(window, int, dwhere, "context_window") if window is not None else None
                ),
                "region": dep.get("region", "") or "",
                **_timeouts(dep, dwhere, DEPLOYMENT_DEFAULTS),
                "enabled": bool(dep.get("enabled", True)),
            },
        )
        if created or changes:
            _full_clean(deployment, dwhere)
            deployment.save()
        label = f"deployment {item['name']} -> {provider.name}/{dep['model']}"
        report.record(label, created, [] if created else changes)


def _load_team(item: dict, report: ConfigReport) -> None:
    where = f"team {item.get('slug', '?')}"
    _check_keys(item, "teams", where)
    models = item.get("allowed_models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{where}: allowed_models must be a list of model names")
    org_slug = str(item.get("organization", DEFAULT_ORG))
    org = Organization.objects.filter(slug=org_slug).first()
    if org is None:
        org = Organization(slug=org_slug, name=org_slug.replace("-", " ").title())
        _full_clean(org, f"{where} organization {org_slug}")
        org.save()
        report.record(f"organization {org_slug}", True, [])
    team = Team.objects.filter(slug=item["slug"]).first()
    created = team is None
    team = team or Team(slug=item["slug"], organization=org)
    changes = _apply(
        team,
        {
            "name": item.get("name", item["slug"]),
            "organization": org,
            "cost_center": item.get("cost_center", "") or "",
            "allowed_models": models,
            "is_active": bool(item.get("is_active", True)),
        },
    )
    if created or changes:
        _full_clean(team, where)
        team.save()
    report.record(where, created, [] if created else changes)
    for proj in _section(item, "projects"):
        _check_keys(proj, "projects", f"{where} project")
        project = Project.objects.filter(team=team, slug=proj["slug"]).first()
        p_created = project is None
        project = project or Project(team=team, slug=proj["slug"])
        p_changes = _apply(project, {"name": proj.get("name", proj["slug"])})
        if p_created or p_changes:
            _full_clean(project, f"{where} project {proj['slug']}")
            project.save()
        report.record(f"project {team.slug}/{project.slug}", p_created, p_changes)


def config_load(*, text: str) -> ConfigReport:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError("the configuration must be a mapping at the top level")
    unknown = set(doc) - {"providers", "models", "teams"}
    if unknown:
        raise ConfigError(f"unknown top-level section(s): {', '.join(sorted(unknown))}")
    doc = _interpolate(doc, "config")
    report = ConfigReport()
    with transaction.atomic():
        for item in _section(doc, "providers"):
            _load_provider(item, report)
        for item in _section(doc, "models"):
            _load_model(item, report)
        for item in _section(doc, "teams"):
            _load_team(item, report)
    return report
