"""Declarative configuration: upsert providers, models and teams from a YAML document.

Idempotent: loading the same file twice changes nothing the second time, and every run says
what it created or changed. It never deletes. The whole file applies in one transaction, or not
at all. `${NAME}` is replaced by the environment variable NAME at load time; a missing variable
is an error, never an empty string.

Every problem in the file is reported at once, each naming its item and field, e.g.
`teams[2] (search).allowed_models[1]: 'smal' names no model (known: large, small)`: fixing a
file one error per run is slow, and a typo must never be half-applied.
"""

from dataclasses import dataclass, field

import yaml
from django.db import transaction

from routing.credentials import Credentials, credential_changes
from routing.kinds import needs_region, serves_embeddings
from routing.models import TIMEOUT_FIELDS, Deployment, Provider
from routing.providers import known_kinds, needs_api_base
from tenants.models import Organization, Project, Team

from . import config_compliance as compliance_cfg
from . import config_reading as read
from . import config_routing as route_cfg
from .config_capabilities import read_capabilities
from .config_credentials import misplaced_parts, read_credentials
from .config_policy import (
    ORGANIZATION_FIELDS,
    apply_model_limits,
    apply_policy,
    load_organization,
    read_model_limits,
    read_policy,
)
from .config_reading import Problems
from .config_timeouts import DEPLOYMENT_DEFAULTS, PROVIDER_DEFAULTS, read_timeouts

DEFAULT_ORG = "default"
SECTIONS = ("providers", "models", "organizations", "teams", "routing_rules")


class ConfigError(ValueError):
    """Everything wrong with a configuration; each entry names its item and field."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:
            text = self.errors[0]
        else:
            text = f"{len(self.errors)} errors:\n" + "\n".join(f"  {e}" for e in self.errors)
        super().__init__(text)


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


# Every field the file may contain, per level (docs/configuration.md documents each one).
FIELDS: dict[str, frozenset[str]] = {
    "providers": frozenset(
        {
            "name",
            "kind",
            "api_base",
            "allow_insecure_http",
            "api_key",
            "credentials",
            "region",
            "timeout_s",
            "enabled",
            *TIMEOUT_FIELDS,
            *compliance_cfg.PROVIDER_FIELDS,  # gateway/config_compliance.py: its agreements
        }
    ),
    "models": frozenset({"name", "mode", "deployments"}) | route_cfg.GROUP_FIELDS,
    "deployments": frozenset(
        {
            "provider",
            "model",
            "input_cost_per_mtok",
            "output_cost_per_mtok",
            "context_window",  # also capabilities.context_window, the newer place
            "capabilities",
            "region",
            "enabled",
            *TIMEOUT_FIELDS,
            *route_cfg.DEPLOYMENT_FIELDS,  # gateway/config_routing.py, like the groups and rules
        }
    ),
    "organizations": ORGANIZATION_FIELDS,
    "teams": frozenset(
        {"slug", "name", "organization", "cost_center", "allowed_models", "is_active", "projects"}
        | {"policy", "model_limits"}  # gateway/config_policy.py
        | {"compliance"}  # gateway/config_compliance.py
    ),
    "projects": frozenset({"slug", "name", "policy"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "providers": frozenset({"name", "kind"}),
    "models": frozenset({"name", "deployments"}),
    "deployments": frozenset({"provider", "model"}),
    "teams": frozenset({"slug"}),
    "projects": frozenset({"slug"}),
}


class _Run(Problems):
    """One load: its problems, its report, and the names that references may use."""

    def __init__(self) -> None:
        super().__init__()
        self.report = ConfigReport()
        self.organizations: set[str] = set()  # recorded once per run, however many teams
        self.file_providers: set[str] = set()
        self.known_models: set[str] = set()


def _timeouts(item: dict, where: str, defaults: dict, run: "_Run", *, legacy=False) -> dict:
    values, problems = read_timeouts(item, defaults, legacy=legacy)
    for name, message in problems:
        run.error(f"{where}.{name}", message)
    return values


def _capabilities(item: dict, where: str, run: "_Run") -> dict:
    values, problems = read_capabilities(item)
    for name, message in problems:
        run.error(f"{where}.{name}", message)
    return values


def _apply(obj, values: dict, secret_fields: frozenset[str] = frozenset()) -> list[str]:
    """Set changed attributes; describe each change (secrets by name only)."""
    changes = []
    for name, new in values.items():
        old = getattr(obj, name)
        if old != new:
            setattr(obj, name, new)
            changes.append(name if name in secret_fields else f"{name} {old!r} -> {new!r}")
    return changes


def _apply_credentials(provider: Provider, new: Credentials) -> list[str]:
    """Store the credential if it changed (re-encrypting an unchanged one would rewrite the row
    on every load); describe the change, secret parts by name only."""
    try:
        old = provider.get_credentials()
    except ValueError:  # stored under a key this gateway no longer has: replaced outright
        provider.set_credentials(new)
        return ["credentials (the stored one could not be decrypted)"]
    if old == new:
        return []
    provider.set_credentials(new)
    return credential_changes(old, new)


# --- Loaders, one per level ----------------------------------------------------------------------


def _insecure_flag(item: dict, where: str, run: _Run) -> bool:
    # Not read.flag: that one defaults to true, and plain http must be asked for explicitly.
    insecure = item.get("allow_insecure_http", False)
    if not isinstance(insecure, bool):
        run.error(f"{where}.allow_insecure_http", f"must be true or false, not {insecure!r}")
        return False
    return insecure


def _load_provider(path: str, item: dict, run: _Run) -> None:
    where = read.label(path, item, "name")
    failed = run.check()
    item = read.interpolate(item, where, run)
    for name in misplaced_parts(item):  # `api_version:` beside `api_key:`, a likely slip
        run.error(f"{where}.{name}", "a credential part: put it under credentials")
    known = FIELDS["providers"] | set(misplaced_parts(item))
    read.check_keys(item, known, REQUIRED["providers"], where, run)
    kind = item.get("kind")
    if "kind" in item and kind not in known_kinds():
        run.error(f"{where}.kind", f"{kind!r} is not one of {', '.join(known_kinds())}")
    elif needs_api_base(kind) and not item.get("api_base"):
        run.error(f"{where}.api_base", f"missing (required for {kind} providers)")
    values = {
        "kind": kind,
        "api_base": read.text(item, "api_base", where, run),
        "region": route_cfg.read_region(item, where, run),
        **_timeouts(item, where, PROVIDER_DEFAULTS, run, legacy=True),
        "allow_insecure_http": _insecure_flag(item, where, run),
        "enabled": read.flag(item, "enabled", where, run),
    }
    name = read.text(item, "name", where, run)
    credentials, problems = read_credentials(item, kind)
    for subpath, message in problems:
        run.error(f"{where}.{subpath}", message)
    agreements = compliance_cfg.read_agreements(item, where, run)
    if failed():
        return
    provider = Provider.objects.filter(name=name).first()
    created = provider is None
    provider = provider or Provider(name=name)
    changes = _apply(provider, values)
    changes += _apply_credentials(provider, Credentials(credentials))
    if (created or changes) and read.full_clean(
        provider, where, run, {"credentials_encrypted": f"{where}.credentials"}
    ):
        read.save(provider, where, run)
    run.report.record(f"provider {provider.name}", created, [] if created else changes)
    if provider.pk is not None:
        compliance_cfg.apply_agreements(agreements, provider, run.report.record, run)


def _load_model(path: str, item: dict, run: _Run) -> None:
    where = read.label(path, item, "name")
    model_failed = run.check()
    item = read.interpolate(item, where, run)
    read.check_keys(item, FIELDS["models"], REQUIRED["models"], where, run)
    name = read.text(item, "name", where, run)
    mode = item.get("mode", Deployment.Mode.CHAT)
    if mode not in Deployment.Mode.values:
        run.error(f"{where}.mode", f"{mode!r} is not one of {', '.join(Deployment.Mode.values)}")
    deployments = read.items(item, "deployments", f"{where}.deployments", run)
    for dpath, dep in read.unique(deployments, ("provider", "model"), run):
        # Deployments of a broken model are still checked, so that all errors show at once.
        _load_deployment(dpath, dep, name, mode, where, model_failed, run)


def _load_deployment(
    path: str, dep: dict, name: str, mode: str, model_where: str, model_failed, run: _Run
) -> None:
    where = read.label(path, dep, "provider")
    failed = run.check()
    read.check_keys(dep, FIELDS["deployments"], REQUIRED["deployments"], where, run)
    values = {
        "mode": mode,
        "input_cost_per_mtok": read.price(dep, "input_cost_per_mtok", where, run),
        "output_cost_per_mtok": read.price(dep, "output_cost_per_mtok", where, run),
        **_capabilities(dep, where, run),
        "region": route_cfg.read_region(dep, where, run),
        **route_cfg.read_weights(dep, where, run),
        **_timeouts(dep, where, DEPLOYMENT_DEFAULTS, run),
        "enabled": read.flag(dep, "enabled", where, run),
    }
    provider_name = read.name_of(dep.get("provider"))
    provider = Provider.objects.filter(name=provider_name).first() if provider_name else None
    if provider is None and provider_name is not None and provider_name not in run.file_providers:
        known = sorted(run.file_providers | set(Provider.objects.values_list("name", flat=True)))
        run.error(f"{where}.provider", f"{provider_name!r} names no provider{read.known(known)}")
    if (
        provider is not None
        and needs_region(provider.kind)
        and not (values["region"] or provider.region)
    ):
        # Signed for a region: the routing table would leave the deployment out.
        run.error(
            f"{where}.region",
            f"missing (required for {provider.kind} deployments: set it here or on the provider)",
        )
    if provider is not None and mode == "embedding" and not serves_embeddings(provider.kind):
        run.error(f"{where}.provider", f"{provider.kind} providers have no embeddings API")
    # A provider of the file that is missing here failed, and has its own error.
    if failed() or model_failed() or provider is None:
        return
    upstream = read.text(dep, "model", where, run)
    deployment = Deployment.objects.filter(
        provider=provider, model_name=name, upstream_model=upstream
    ).first()
    created = deployment is None
    deployment = deployment or Deployment(
        provider=provider, model_name=name, upstream_model=upstream
    )
    changes = _apply(deployment, values)
    paths = {"model_name": f"{model_where}.name", "upstream_model": f"{where}.model"}
    if (created or changes) and read.full_clean(deployment, where, run, paths):
        read.save(deployment, where, run)
    label = f"deployment {name} -> {provider.name}/{upstream}"
    run.report.record(label, created, [] if created else changes)


def _allowed_models(item: dict, where: str, run: _Run) -> list[str]:
    models = item.get("allowed_models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        run.error(f"{where}.allowed_models", "must be a list of model names")
        return []
    for index, model in enumerate(models):
        # A typo would otherwise leave the team quietly without the model it was meant to get.
        if model != "*" and model not in run.known_models:
            message = f"{model!r} names no model{read.known(sorted(run.known_models))}"
            run.error(f"{where}.allowed_models[{index}]", message)
    return models


def _organization(slug: str, where: str, run: _Run) -> Organization | None:
    org = Organization.objects.filter(slug=slug).first()
    created = org is None
    if created:
        org = Organization(slug=slug, name=slug.replace("-", " ").title())
        path = f"{where}.organization"
        if not read.full_clean(org, path, run, {"slug": path, "name": path}):
            return None
        read.save(org, path, run)
    if slug not in run.organizations:  # counted once per run, created or not, like any item
        run.organizations.add(slug)
        run.report.record(f"organization {slug}", created, [])
    return org


def _load_team(path: str, item: dict, run: _Run) -> None:
    where = read.label(path, item, "slug")
    failed = run.check()
    item = read.interpolate(item, where, run)
    read.check_keys(item, FIELDS["teams"], REQUIRED["teams"], where, run)
    slug = read.text(item, "slug", where, run)
    org_slug = read.text(item, "organization", where, run, default=DEFAULT_ORG)
    values = {
        "name": read.text(item, "name", where, run, default=slug),
        "cost_center": read.text(item, "cost_center", where, run),
        "allowed_models": _allowed_models(item, where, run),
        "is_active": read.flag(item, "is_active", where, run),
    }
    policy = read_policy(item.get("policy"), f"{where}.policy", run)
    limits = read_model_limits(item, where, run)
    requirements = compliance_cfg.read_requirements(item, where, run)
    projects = read.unique(read.items(item, "projects", f"{where}.projects", run), ("slug",), run)
    project_policies = {}
    for ppath, proj in projects:  # checked now, so that a team's errors all show at once
        pwhere = read.label(ppath, proj, "slug")
        read.check_keys(proj, FIELDS["projects"], REQUIRED["projects"], pwhere, run)
        project_policies[ppath] = read_policy(proj.get("policy"), f"{pwhere}.policy", run)
    if failed():
        return
    org = _organization(org_slug, where, run)
    if org is None:
        return
    team = Team.objects.filter(slug=slug).first()
    created = team is None
    team = team or Team(slug=slug, organization=org)
    changes = _apply(team, {**values, "organization": org})
    if (created or changes) and read.full_clean(
        team, where, run, {"organization": f"{where}.organization"}
    ):
        read.save(team, where, run)
    run.report.record(f"team {slug}", created, [] if created else changes)
    if team.pk is None:
        return
    # Before the projects: a project's limits are checked against its team's.
    apply_policy(policy, "team", team, f"team {slug}", f"{where}.policy", run)
    apply_model_limits(limits, "team", team, f"team {slug}", where, run)
    compliance_cfg.apply_requirements(requirements, "team", team, run.report.record)
    for ppath, proj in projects:
        pwhere = read.label(ppath, proj, "slug")
        p_slug = read.text(proj, "slug", pwhere, run)
        project = Project.objects.filter(team=team, slug=p_slug).first()
        p_created = project is None
        project = project or Project(team=team, slug=p_slug)
        p_changes = _apply(project, {"name": read.text(proj, "name", pwhere, run, default=p_slug)})
        if (p_created or p_changes) and read.full_clean(project, pwhere, run):
            read.save(project, pwhere, run)
        run.report.record(f"project {team.slug}/{project.slug}", p_created, p_changes)
        if project.pk is not None:
            label = f"project {team.slug}/{project.slug}"
            apply_policy(
                project_policies[ppath], "project", project, label, f"{pwhere}.policy", run
            )


def _parse(text: str) -> dict:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise ConfigError(["the configuration must be a mapping at the top level"])
    return doc


def config_load(*, text: str) -> ConfigReport:
    """Apply a configuration; raise ConfigError listing every problem, with nothing applied."""
    doc = _parse(text)
    run = _Run()
    for name in sorted(str(k) for k in set(doc) - set(SECTIONS)):
        run.error(name, f"unknown top-level section (known: {', '.join(SECTIONS)})")
    providers = read.unique(read.items(doc, "providers", "providers", run), ("name",), run)
    models = read.unique(read.items(doc, "models", "models", run), ("name",), run)
    organizations = read.unique(
        read.items(doc, "organizations", "organizations", run), ("slug",), run
    )
    teams = read.unique(read.items(doc, "teams", "teams", run), ("slug",), run)
    run.file_providers = {n for _, p in providers if (n := read.name_of(p.get("name")))}
    run.known_models = {n for _, m in models if (n := read.name_of(m.get("name")))}
    run.known_models |= set(Deployment.objects.order_by().values_list("model_name", flat=True))
    with transaction.atomic():
        for path, item in providers:
            _load_provider(path, item, run)
        for path, item in models:
            _load_model(path, item, run)
        route_cfg.load_groups(models, run)  # after the models: a fallback may name a later one
        for path, item in organizations:  # before the teams that name them
            load_organization(path, item, run)
        for path, item in teams:
            _load_team(path, item, run)
        route_cfg.load_rules(doc, run.known_models, run)  # rules name teams
        if run.errors:
            raise ConfigError(run.errors)  # rolls the whole file back
    return run.report
