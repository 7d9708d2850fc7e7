"""Deployment capabilities in the admin: edited on the deployment form and the provider's inline,
reviewed in the deployment list."""

import re

import pytest
from django.urls import reverse

from routing.models import Deployment, Provider

from .factories import DeploymentFactory, ProviderFactory


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def deployment(db) -> Deployment:
    return DeploymentFactory(provider=ProviderFactory(name="vendor"), upstream_model="text-only")


def _deployment_form(d: Deployment, **capabilities) -> dict:
    data = {
        "provider": d.provider_id,
        "model_name": d.model_name,
        "upstream_model": d.upstream_model,
        "mode": d.mode,
        "input_cost_per_mtok": d.input_cost_per_mtok,
        "output_cost_per_mtok": d.output_cost_per_mtok,
        "region": d.region,
        "weight": d.weight,
        "priority": d.priority,
        "enabled": "on",
    }
    # Unchecked boxes are not posted at all: only the ones given here are on.
    data.update({k: v for k, v in capabilities.items() if v is not False})
    return data


def test_deployment_form_shows_the_capabilities(admin_client, deployment):
    page = admin_client.get(_url(Deployment, "change", deployment.pk)).content.decode()
    assert "Capabilities" in page
    for field in (
        "context_window",
        "max_output_tokens",
        "supports_tools",
        "supports_vision",
        "supports_json_mode",
        "supports_streaming",
    ):
        assert f'name="{field}"' in page


def test_deployment_form_saves_the_capabilities(admin_client, deployment):
    data = _deployment_form(
        deployment,
        context_window="32768",
        max_output_tokens="4096",
        supports_tools="on",
        supports_json_mode="on",
    )
    response = admin_client.post(_url(Deployment, "change", deployment.pk), data)
    assert response.status_code == 302, response.content[:2000]
    deployment.refresh_from_db()
    assert (deployment.context_window, deployment.max_output_tokens) == (32768, 4096)
    assert deployment.supports_tools and deployment.supports_json_mode
    assert not deployment.supports_vision
    assert not deployment.supports_streaming


def test_deployment_form_refuses_more_output_than_the_context_window(admin_client, deployment):
    data = _deployment_form(deployment, context_window="4096", max_output_tokens="8192")
    response = admin_client.post(_url(Deployment, "change", deployment.pk), data)
    assert response.status_code == 200
    assert "More than the context window (4096)" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.max_output_tokens is None


def test_deployment_form_refuses_a_zero_context_window(admin_client, deployment):
    data = _deployment_form(deployment, context_window="0")
    response = admin_client.post(_url(Deployment, "change", deployment.pk), data)
    assert response.status_code == 200
    assert "greater than or equal to 1" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.context_window == 128000


def test_provider_inline_shows_and_saves_the_capabilities(admin_client, deployment):
    provider = deployment.provider
    page = admin_client.get(_url(Provider, "change", provider.pk)).content.decode()
    assert 'name="deployments-0-supports_vision"' in page
    assert 'name="deployments-0-max_output_tokens"' in page
    row = {
        "id": deployment.pk,
        "provider": provider.pk,
        "model_name": deployment.model_name,
        "upstream_model": deployment.upstream_model,
        "mode": deployment.mode,
        "input_cost_per_mtok": deployment.input_cost_per_mtok,
        "output_cost_per_mtok": deployment.output_cost_per_mtok,
        "context_window": "8192",
        "max_output_tokens": "2048",
        "supports_tools": "on",
        "supports_streaming": "on",
        "enabled": "on",
    }
    data = {
        "name": provider.name,
        "kind": provider.kind,
        "api_base": provider.api_base,
        "region": provider.region,
        "first_byte_timeout_s": provider.first_byte_timeout_s,
        "idle_timeout_s": provider.idle_timeout_s,
        "attempt_timeout_s": provider.attempt_timeout_s,
        "enabled": "on",
        "deployments-TOTAL_FORMS": "1",
        "deployments-INITIAL_FORMS": "1",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "1000",
        **{f"deployments-0-{k}": v for k, v in row.items()},
    }
    response = admin_client.post(_url(Provider, "change", provider.pk), data)
    assert response.status_code == 302, response.content[:3000]
    deployment.refresh_from_db()
    assert (deployment.context_window, deployment.max_output_tokens) == (8192, 2048)
    assert deployment.supports_tools and deployment.supports_streaming
    assert not deployment.supports_vision and not deployment.supports_json_mode


# A list cell, whatever other classes and attributes the admin's theme gives it.
_CELL = r'<td class="[^"]*\bfield-{}\b[^"]*"[^>]*>([^<]*)</td>'


def test_deployment_list_shows_what_each_deployment_supports(admin_client, db):
    provider = ProviderFactory(name="vendor")
    DeploymentFactory(provider=provider, upstream_model="all-round")
    DeploymentFactory(
        provider=provider,
        upstream_model="text-only",
        supports_vision=False,
        supports_tools=False,
        max_output_tokens=4096,
    )
    page = admin_client.get(_url(Deployment, "changelist")).content.decode()
    assert "Supports" in page
    cells = [c.strip() for c in re.findall(_CELL.format("capability_list"), page)]
    assert sorted(cells) == ["json_mode, streaming", "tools, vision, json_mode, streaming"]
    assert "4096" in [c.strip() for c in re.findall(_CELL.format("max_output_tokens"), page)]


def test_deployment_list_filters_on_a_capability(admin_client, db):
    provider = ProviderFactory(name="vendor")
    DeploymentFactory(provider=provider, upstream_model="all-round")
    DeploymentFactory(provider=provider, upstream_model="text-only", supports_vision=False)
    response = admin_client.get(_url(Deployment, "changelist"), {"supports_vision__exact": "0"})
    assert response.status_code == 200
    assert [d.upstream_model for d in response.context["cl"].result_list] == ["text-only"]
    page = response.content.decode()
    assert "By vision" in page
