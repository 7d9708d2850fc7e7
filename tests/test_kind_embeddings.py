"""A provider kind without an embeddings API (Anthropic) never serves an embedding model:
loadconfig refuses such a deployment, and a row written around it is left out of routing."""

import pytest

from gateway.config import ConfigError, config_load
from routing.selectors import routing_table_build
from tests.factories import DeploymentFactory, ProviderFactory


def test_loadconfig_refuses_an_embedding_deployment_on_anthropic(db):
    text = """
providers:
  - {name: claude, kind: anthropic, api_key: sk-ant-test}
models:
  - name: embed
    mode: embedding
    deployments:
      - {provider: claude, model: claude-embed}
"""
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    assert "models[0] (embed).deployments[0] (claude).provider: anthropic providers have no " in (
        str(caught.value)
    )


def test_an_embedding_row_on_anthropic_is_left_out_of_routing_with_its_reason(db):
    provider = ProviderFactory(name="claude", kind="anthropic", api_base="")
    provider.set_api_key("sk-ant-test")
    provider.save()
    DeploymentFactory(provider=provider, model_name="embed", mode="embedding")
    DeploymentFactory(provider=provider, model_name="chat", mode="chat")

    table = routing_table_build()

    assert table.candidates("embedding", "embed") == ()
    assert [r.model_name for r in table.candidates("chat", "chat")] == ["chat"]
    assert [(s.provider, s.reason) for s in table.skipped] == [
        ("claude", "anthropic providers have no embeddings API")
    ]
