"""Model groups, routing rules, weight/priority and regions in the admin: the same checks as
the configuration file."""

import pytest
from django.urls import reverse

from policies.admin import PolicyForm
from routing.models import Deployment, ModelGroup, RoutingRule

from .factories import DeploymentFactory, ProviderFactory, TeamFactory


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def deployments(db):
    provider = ProviderFactory(name="vendor")
    DeploymentFactory(provider=provider, model_name="smart", upstream_model="s")
    DeploymentFactory(provider=provider, model_name="large", upstream_model="l")
    DeploymentFactory(provider=provider, model_name="vec", upstream_model="v", mode="embedding")
    return provider


def _group(**extra) -> dict:
    return {
        "name": "smart",
        "mode": "chat",
        "strategy": "weighted",
        "fallbacks": '["large"]',
        "context_fallbacks": "[]",
        **extra,
    }


def test_a_model_group_is_saved_with_its_strategy_and_fallbacks(admin_client, deployments):
    response = admin_client.post(_url(ModelGroup, "add"), _group())
    assert response.status_code == 302
    group = ModelGroup.objects.get()
    assert (group.strategy, group.fallbacks) == ("weighted", ["large"])
    page = admin_client.get(_url(ModelGroup, "changelist")).content.decode()
    assert "Weighted random" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fallbacks": '["smart"]'}, "a group cannot fall back to itself"),
        ({"fallbacks": '["vec"]'}, "&#x27;vec&#x27; names no group of this mode"),
        ({"context_fallbacks": '"large"'}, "must be a list of group names"),
    ],
)
def test_bad_fallbacks_are_refused_in_the_admin(admin_client, deployments, fields, message):
    response = admin_client.post(_url(ModelGroup, "add"), _group(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ModelGroup.objects.exists()


def _rule(**extra) -> dict:
    return {"position": "0", "model": "smart", "group": "large", "enabled": "on", **extra}


def test_routing_rules_by_team_or_tag_are_saved(admin_client, deployments):
    team = TeamFactory(slug="research")
    assert admin_client.post(_url(RoutingRule, "add"), _rule(team=team.pk)).status_code == 302
    assert admin_client.post(_url(RoutingRule, "add"), _rule(tag="batch")).status_code == 302
    assert sorted(str(r) for r in RoutingRule.objects.all()) == [
        "tag batch: smart -> large",
        "team research: smart -> large",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Give a team or a tag, not both and not neither."),
        ({"tag": "x", "group": "huge"}, "&#x27;huge&#x27; names no model group"),
    ],
)
def test_bad_rules_are_refused_in_the_admin(admin_client, deployments, fields, message):
    response = admin_client.post(_url(RoutingRule, "add"), _rule(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not RoutingRule.objects.exists()


def _deployment_form(d: Deployment, **extra) -> dict:
    return {
        "provider": d.provider_id,
        "model_name": d.model_name,
        "upstream_model": d.upstream_model,
        "mode": d.mode,
        "input_cost_per_mtok": d.input_cost_per_mtok,
        "output_cost_per_mtok": d.output_cost_per_mtok,
        "weight": d.weight,
        "priority": d.priority,
        "enabled": "on",
        **extra,
    }


def test_weight_priority_and_a_cloud_region_are_saved_on_a_deployment(admin_client, deployments):
    d = Deployment.objects.get(upstream_model="s")
    form = _deployment_form(d, weight="5", priority="-2", region="europe-west4")
    assert admin_client.post(_url(Deployment, "change", d.pk), form).status_code == 302
    d.refresh_from_db()
    assert (d.weight, d.priority, d.region) == (5, -2, "europe-west4")


def test_a_region_outside_the_vocabulary_is_refused_naming_it(admin_client, deployments):
    d = Deployment.objects.get(upstream_model="s")
    response = admin_client.post(
        _url(Deployment, "change", d.pk), _deployment_form(d, region="mars")
    )
    assert response.status_code == 200
    assert "is not a region: use one of eu, eu-west," in response.content.decode()


def test_policy_allowed_regions_take_vocabulary_names_only(db):
    form = PolicyForm(data={"allowed_regions": '["eu", "westeurope"]'})
    form.is_valid()
    assert "&#x27;westeurope&#x27; is not one of" in str(form.errors["allowed_regions"])
    form = PolicyForm(data={"allowed_regions": '["eu", "us-east"]'})
    form.is_valid()
    assert "allowed_regions" not in form.errors
