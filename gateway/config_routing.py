"""Routing in a configuration file: model groups' strategy and fallbacks, deployments' weight
and priority, regions, and the top-level `routing_rules:`.

    models:
      - name: smart
        strategy: latency            # cheapest (default) | latency | weighted | priority
        fallbacks: [large]           # groups tried when every deployment of this one failed
        context_fallbacks: [long-context]   # on a context-length error
        deployments:
          - {provider: openai-eu, model: gpt-4o, weight: 3, priority: 0, region: eu-west}

    routing_rules:                   # first match wins
      - {team: research, model: smart, group: smart-eu}
      - {tag: batch, model: "*", group: cheap}   # x-gateway-route-tag: batch

Groups are applied after every model of the file, so that a fallback may name a group defined
further down. A model item without strategy or fallbacks creates no group row (it routes as
cheapest); once a row exists, left-out fields go back to their defaults, as with policies.

Rules are keyed by (team or tag, model): loading updates their group, order and `enabled`,
and never deletes one that the file no longer lists (the admin does); a kept rule is named in
the report so that it is not forgotten.
"""

from routing.groups import FALLBACK_FIELDS, fallback_list_problems
from routing.models import Deployment, ModelGroup, RoutingRule
from routing.regions import region_problem
from routing.strategies import STRATEGIES
from tenants.models import Team

from . import config_reading as read
from .config_reading import Problems

GROUP_FIELDS = frozenset({"strategy", *FALLBACK_FIELDS})
DEPLOYMENT_FIELDS = frozenset({"weight", "priority"})
RULE_FIELDS = frozenset({"team", "tag", "model", "group", "enabled"})


def read_region(item: dict, where: str, run: Problems) -> str:
    value = read.text(item, "region", where, run)
    if problem := region_problem(value):
        run.error(f"{where}.region", problem)
    return value


def read_weights(item: dict, where: str, run: Problems) -> dict[str, int]:
    """A deployment's weight (>= 0, default 1) and priority (any whole number, default 0)."""
    values = {"weight": item.get("weight", 1), "priority": item.get("priority", 0)}
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            run.error(f"{where}.{name}", f"must be a whole number, not {value!r}")
            values[name] = 0
        elif name == "weight" and value < 0:
            run.error(f"{where}.weight", "must be 0 or more")
    return values


def _known_groups(models: list[tuple[str, dict]], mode: str) -> set[str]:
    in_file = {
        name
        for _, m in models
        if (name := read.name_of(m.get("name"))) and m.get("mode", "chat") == mode
    }
    rows = ModelGroup.objects.filter(mode=mode).order_by().values_list("name", flat=True)
    deployed = Deployment.objects.filter(mode=mode).order_by().values_list("model_name", flat=True)
    return in_file | set(rows) | set(deployed)


def load_groups(models: list[tuple[str, dict]], run) -> None:
    """Upsert the ModelGroup of each model item that has one (or had one)."""
    known: dict[str, set[str]] = {}
    for path, item in models:
        where = read.label(path, item, "name")
        name, mode = read.name_of(item.get("name")), item.get("mode", "chat")
        if name is None or mode not in Deployment.Mode.values:
            continue  # reported by the model's loader
        group = ModelGroup.objects.filter(mode=mode, name=name).first()
        if group is None and not GROUP_FIELDS & set(item):
            continue
        failed = run.check()
        strategy = item.get("strategy", ModelGroup.Strategy.CHEAPEST.value)
        if strategy not in STRATEGIES:
            run.error(f"{where}.strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
        if mode not in known:
            known[mode] = _known_groups(models, mode)
        values = {"strategy": strategy}
        for field in FALLBACK_FIELDS:
            values[field] = item.get(field) or []
            for sub, message in fallback_list_problems(name, field, values[field], known[mode]):
                run.error(f"{where}.{sub}", message)
        if failed():
            continue
        created = group is None
        group = group or ModelGroup(mode=mode, name=name)
        changes = []
        for field, new in values.items():
            if getattr(group, field) != new:
                changes.append(f"{field} {getattr(group, field)!r} -> {new!r}")
                setattr(group, field, new)
        if created or changes:
            read.save(group, where, run)
        run.report.record(f"model group {name}", created, [] if created else changes)


def _rule_team(item: dict, where: str, run) -> tuple[Team | None, str]:
    has_team, has_tag = item.get("team") is not None, item.get("tag") is not None
    if has_team == has_tag:
        run.error(where, "give a team or a tag (exactly one)")
        return None, ""
    if has_tag:
        tag = read.text(item, "tag", where, run)
        if not tag:
            run.error(f"{where}.tag", "must not be empty")
        return None, tag
    slug = read.name_of(item["team"])
    team = Team.objects.filter(slug=slug).first() if slug else None
    if team is None:
        known = sorted(Team.objects.values_list("slug", flat=True))
        run.error(f"{where}.team", f"{item['team']!r} names no team{read.known(known)}")
    return team, ""


def load_rules(doc: dict, models: set[str], run) -> None:
    """Upsert the `routing_rules:` section (after the teams, which rules name)."""
    if "routing_rules" not in doc:
        return
    rules = read.items(doc, "routing_rules", "routing_rules", run)
    groups = set(ModelGroup.objects.values_list("name", flat=True)) | models
    listed: set[int] = set()
    for position, (where, item) in enumerate(rules):
        failed = run.check()
        read.check_keys(item, RULE_FIELDS, frozenset({"model", "group"}), where, run)
        team, tag = _rule_team(item, where, run)
        model = read.text(item, "model", where, run)
        group = read.text(item, "group", where, run)
        if model and model != "*" and model not in models:
            run.error(f"{where}.model", f"{model!r} names no model{read.known(sorted(models))}")
        if group and group not in groups:
            known = read.known(sorted(groups))
            run.error(f"{where}.group", f"{group!r} names no model group{known}")
        enabled = read.flag(item, "enabled", where, run)
        if failed():
            continue
        rule = RoutingRule.objects.filter(team=team, tag=tag, model=model).first()
        created = rule is None
        rule = rule or RoutingRule(team=team, tag=tag, model=model)
        changes = []
        for field, new in {"position": position, "group": group, "enabled": enabled}.items():
            if getattr(rule, field) != new:
                changes.append(f"{field} {getattr(rule, field)!r} -> {new!r}")
                setattr(rule, field, new)
        if created or changes:
            read.save(rule, where, run)
        listed.add(rule.pk)
        run.report.record(f"routing rule {rule}", created, [] if created else changes)
    for rule in RoutingRule.objects.exclude(pk__in=listed).select_related("team"):
        run.report.lines.append(f"kept      routing rule {rule} (not in the file; admin deletes)")
