"""Model groups end to end: the strategy orders the deployments, routing rules send a team's or
a tagged request elsewhere, and regions (with sub-regions) bound the candidates."""

import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team

from .budget_support import set_team_policy
from .support import TEAM, assert_openai_error, wait_for_usage_records

# Added to the e2e configuration (whose providers all point at the fake upstream).
GROUPS = """
models:
  # Priority: the dearer deployment first, because an admin said so.
  - name: grp-priority
    strategy: priority
    deployments:
      - {provider: fake-primary, model: fake-prio-cheap, input_cost_per_mtok: 0.1,
         priority: 5, region: us-east-1}
      - {provider: fake-backup, model: fake-prio-dear, input_cost_per_mtok: 9,
         priority: 1, region: westeurope}
  # Cheapest, where the cheapest cannot hold the prompt: the next one serves it.
  - name: grp-context
    deployments:
      - {provider: fake-primary, model: fake-ctx-small, input_cost_per_mtok: 0.1,
         context_window: 500}
      - {provider: fake-backup, model: fake-ctx-large, input_cost_per_mtok: 1,
         context_window: 100000}
  # Weighted, the cheap one with weight 0: only ever a fallback.
  - name: grp-weighted
    strategy: weighted
    deployments:
      - {provider: fake-primary, model: fake-w-zero, input_cost_per_mtok: 0.1, weight: 0}
      - {provider: fake-backup, model: fake-w-one, input_cost_per_mtok: 5, weight: 1}
  - name: grp-team
    deployments: [{provider: fake-backup, model: fake-team-target}]
  - name: grp-tag
    deployments: [{provider: fake-backup, model: fake-tag-target}]
routing_rules:
  - {tag: tagged, model: grp-context, group: grp-tag}
"""
MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def key(gateway) -> str:
    config_load(text=GROUPS)
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return gateway.issue_key(name="groups")


def _post(gateway, key: str, model: str, messages=MESSAGES, headers=None):
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": messages},
            headers={**gateway.auth(key), **(headers or {})},
        )


def test_the_priority_strategy_tries_the_admins_first_choice(gateway, upstream, key):
    response = _post(gateway, key, "grp-priority")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-prio-dear"
    assert response.headers["x-gateway-route-strategy"] == "priority"
    assert response.headers["x-gateway-region"] == "eu-west"  # westeurope
    [record] = wait_for_usage_records(1)
    assert (record.region, record.requested_model) == ("eu-west", "grp-priority")


def test_the_weighted_strategy_never_puts_a_zero_weight_first(gateway, upstream, key):
    for _ in range(5):
        response = _post(gateway, key, "grp-weighted")
        assert response.headers["x-gateway-deployment"] == "fake-backup/fake-w-one"
        assert response.headers["x-gateway-route-strategy"] == "weighted"


def test_cheapest_serves_from_the_next_when_the_cheapest_cannot_fit_the_prompt(
    gateway, upstream, key
):
    short = _post(gateway, key, "grp-context")
    assert short.headers["x-gateway-deployment"] == "fake-primary/fake-ctx-small"
    assert short.headers["x-gateway-route-strategy"] == "cheapest"
    long = [{"role": "user", "content": "word " * 2000}]  # about 2000 tokens: over 500
    response = _post(gateway, key, "grp-context", messages=long)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-ctx-large"


def test_a_tag_header_rule_sends_the_request_to_its_group(gateway, upstream, key):
    response = _post(gateway, key, "grp-context", headers={"x-gateway-route-tag": "tagged"})
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-tag-target"
    other = _post(gateway, key, "grp-context", headers={"x-gateway-route-tag": "other"})
    assert other.headers["x-gateway-deployment"] == "fake-primary/fake-ctx-small"


def test_a_team_rule_sends_the_teams_requests_to_its_group(gateway, upstream, key):
    config_load(
        text=f"routing_rules:\n  - {{team: {TEAM}, model: grp-priority, group: grp-team}}\n"
    )
    routing_table_cache.invalidate()
    response = _post(gateway, key, "grp-priority")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-team-target"


def test_a_rule_never_opens_a_group_the_policy_closes(gateway, upstream, key):
    set_team_policy(gateway.team, allowed_models=["grp-context"])
    response = _post(gateway, key, "grp-context", headers={"x-gateway-route-tag": "tagged"})
    body = assert_openai_error(response, 403, "model_not_allowed")
    assert body["message"] == (
        "a routing rule sends 'grp-context' to 'grp-tag'; team 'e2e' allows models: grp-context"
    )


def test_allowed_regions_match_sub_regions_and_cloud_ids(gateway, upstream, key):
    # westeurope is eu-west, inside eu: the priority order's first choice stays allowed.
    set_team_policy(gateway.team, allowed_regions=["eu"])
    response = _post(gateway, key, "grp-priority")
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-prio-dear"
    # Only us: the us-east-1 deployment, though the priority order puts it second.
    set_team_policy(gateway.team, allowed_regions=["us"])
    response = _post(gateway, key, "grp-priority")
    assert response.headers["x-gateway-deployment"] == "fake-primary/fake-prio-cheap"
    # Nothing there: refused, naming the regions, never a call elsewhere.
    set_team_policy(gateway.team, allowed_regions=["ap"])
    response = _post(gateway, key, "grp-priority")
    body = assert_openai_error(response, 403, "route_not_allowed")
    assert "allows regions: ap" in body["message"]
