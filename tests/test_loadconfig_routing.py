"""Routing in the configuration file: group strategy and fallbacks, deployment weight and
priority, regions from the vocabulary, routing rules; every mistake named at its path."""

import pytest

from gateway.config import ConfigError, config_load
from routing.models import Deployment, ModelGroup, RoutingRule
from routing.selectors import Rule, routing_table_build

from .helpers_config import config_rows

BASE = """
providers:
  - {name: p-eu, kind: mock, region: westeurope}
  - {name: p-us, kind: mock, region: us-east-1}
models:
  - name: smart
    strategy: priority
    fallbacks: [large]
    context_fallbacks: [long-context]
    deployments:
      - {provider: p-eu, model: a, weight: 3, priority: 2, region: eu-central}
      - {provider: p-us, model: b, priority: 1}
  - name: large
    deployments: [{provider: p-us, model: l}]
  - name: long-context
    deployments: [{provider: p-eu, model: lc}]
  - name: smart-eu
    deployments: [{provider: p-eu, model: s}]
  - name: vectors
    mode: embedding
    deployments: [{provider: p-eu, model: e}]
teams:
  - {slug: research, allowed_models: ["*"]}
"""
RULES = """
routing_rules:
  - {team: research, model: smart, group: smart-eu}
  - {tag: batch, model: "*", group: large}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    assert config_rows() == [[]] * 7  # nothing applied
    return caught.value.errors


def test_groups_weights_and_rules_are_loaded_and_reloading_changes_nothing(db):
    report = config_load(text=BASE + RULES)
    group = ModelGroup.objects.get(name="smart")
    assert (group.mode, group.strategy, group.fallbacks, group.context_fallbacks) == (
        "chat",
        "priority",
        ["large"],
        ["long-context"],
    )
    # A model without strategy or fallbacks gets no row: it routes as cheapest.
    assert not ModelGroup.objects.filter(name="large").exists()
    a = Deployment.objects.get(upstream_model="a")
    assert (a.weight, a.priority, a.region) == (3, 2, "eu-central")
    assert Deployment.objects.get(upstream_model="b").weight == 1
    rules = list(RoutingRule.objects.order_by("position"))
    assert [(r.position, r.team and r.team.slug, r.tag, r.model, r.group) for r in rules] == [
        (0, "research", "", "smart", "smart-eu"),
        (1, None, "batch", "*", "large"),
    ]
    assert "created   model group smart" in report.lines
    assert config_load(text=BASE + RULES).summary().startswith("0 created, 0 updated")


def test_the_routing_table_carries_groups_rules_and_residency(db):
    config_load(text=BASE + RULES)
    table = routing_table_build()
    smart = table.group("chat", "smart")
    assert (smart.strategy, smart.fallbacks, smart.context_fallbacks) == (
        "priority",
        ("large",),
        ("long-context",),
    )
    assert table.group("chat", "large").strategy == "cheapest"
    by_model = {r.upstream_model: r for r in table.candidates("chat", "smart")}
    # The region as configured (bedrock signs for it) and its vocabulary name.
    assert (by_model["a"].region, by_model["a"].residency) == ("eu-central", "eu-central")
    assert (by_model["b"].region, by_model["b"].residency) == ("us-east-1", "us-east")
    assert (by_model["a"].weight, by_model["a"].priority) == (3, 2)
    research = table.rules[0].team_id
    assert table.rules[1] == Rule(model="*", group="large", tag="batch")
    assert table.routed_model("smart", research, "") == "smart-eu"
    assert table.routed_model("smart", research + 1, "batch") == "large"
    assert table.routed_model("smart", research + 1, "other") == "smart"
    # The first match wins: the team's rule before the tag's.
    assert table.routed_model("smart", research, "batch") == "smart-eu"


def test_a_group_left_out_later_returns_to_the_defaults(db):
    config_load(text=BASE)
    report = config_load(text=BASE.replace("    strategy: priority\n", ""))
    assert ModelGroup.objects.get(name="smart").strategy == "cheapest"
    assert any("strategy 'priority' -> 'cheapest'" in line for line in report.lines)


def test_rules_missing_from_the_file_are_kept_and_reported(db):
    config_load(text=BASE + RULES)
    report = config_load(text=BASE + "routing_rules:\n  - {tag: batch, model: '*', group: large}\n")
    assert RoutingRule.objects.count() == 2
    assert any(line.startswith("kept      routing rule team research") for line in report.lines)
    assert RoutingRule.objects.get(tag="batch").position == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("strategy: priority", "strategy: fastest"),
            "models[0] (smart).strategy: 'fastest' is not one of cheapest, latency, weighted, "
            "priority",
        ),
        (
            ("fallbacks: [large]", "fallbacks: [lagre]"),
            "models[0] (smart).fallbacks[0]: 'lagre' names no group of this mode (known: large,",
        ),
        (
            ("fallbacks: [large]", "fallbacks: [smart]"),
            "models[0] (smart).fallbacks[0]: a group cannot fall back to itself",
        ),
        (
            ("context_fallbacks: [long-context]", "context_fallbacks: [vectors]"),
            "models[0] (smart).context_fallbacks[0]: 'vectors' names no group of this mode",
        ),
        (
            ("fallbacks: [large]", "fallbacks: large"),
            "models[0] (smart).fallbacks: must be a list of group names",
        ),
        (
            ("weight: 3", "weight: -1"),
            "models[0] (smart).deployments[0] (p-eu).weight: must be 0 or more",
        ),
        (
            ("priority: 1}", "priority: first}"),
            "models[0] (smart).deployments[1] (p-us).priority: must be a whole number",
        ),
        (
            ("region: eu-central", "region: europe"),
            "models[0] (smart).deployments[0] (p-eu).region: 'europe' is not a region: use one "
            "of eu, eu-west,",
        ),
        (
            ("region: westeurope", "region: local"),
            "providers[0] (p-eu).region: 'local' is not a region",
        ),
    ],
)
def test_routing_mistakes_are_named_at_their_path(db, change, message):
    old, new = change
    assert old in BASE
    errors = _errors(BASE.replace(old, new, 1))
    assert any(e.startswith(message) for e in errors), errors


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{team: research, tag: x, model: smart, group: large}", "give a team or a tag"),
        ("{model: smart, group: large}", "give a team or a tag"),
        ("{team: nobody, model: smart, group: large}", ".team: 'nobody' names no team"),
        ("{tag: x, model: smrt, group: large}", ".model: 'smrt' names no model"),
        ("{tag: x, model: smart, group: huge}", ".group: 'huge' names no model group"),
        ("{tag: x, model: smart, group: large, when: now}", ".when: unknown field"),
    ],
)
def test_rule_mistakes_are_named_at_their_path(db, rule, message):
    errors = _errors(BASE + f"routing_rules:\n  - {rule}\n")
    assert any(e.startswith("routing_rules[0]") and message in e for e in errors), errors


def test_a_policy_names_only_vocabulary_regions(db):
    text = BASE + "    policy: {allowed_regions: [eu, westeurope]}\n"
    errors = _errors(
        text.replace('  - {slug: research, allowed_models: ["*"]}\n', "  - slug: research\n")
    )
    assert any(
        "policy.allowed_regions[1]: 'westeurope' is not one of eu," in e and "'eu-west'" in e
        for e in errors
    ), errors
