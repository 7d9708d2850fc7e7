"""The bedrock kind in configuration: AWS credential parts or none (the environment's chain),
and a region for every deployment (its own or its provider's), else an error at its path and a
deployment the routing table leaves out."""

import pytest

from gateway.config import ConfigError, config_load
from routing.models import Deployment, Provider
from routing.selectors import routing_table_build

BEDROCK = """
providers:
  - name: aws
    kind: bedrock
    {region}
    {credentials}
models:
  - name: claude
    deployments:
      - {{provider: aws, model: "anthropic.claude-3-haiku-20240307-v1:0"{deployment_region}}}
"""


def _config(*, region="", credentials="", deployment_region="") -> str:
    return BEDROCK.format(
        region=region, credentials=credentials, deployment_region=deployment_region
    )


def test_a_bedrock_provider_takes_aws_credentials(db):
    config_load(
        text=_config(
            region="region: us-east-1",
            credentials="credentials: {aws_access_key_id: AKIAEXAMPLE00000000, "
            "aws_secret_access_key: example-secret, aws_session_token: example-token}",
        )
    )

    assert Provider.objects.get(name="aws").get_credentials() == {
        "aws_access_key_id": "AKIAEXAMPLE00000000",
        "aws_secret_access_key": "example-secret",
        "aws_session_token": "example-token",
    }


def test_a_bedrock_provider_without_credentials_uses_the_environment_chain(db):
    config_load(text=_config(region="region: us-east-1"))

    assert Provider.objects.get(name="aws").get_credentials() == {}
    [route] = routing_table_build().candidates("chat", "claude")
    assert route.region == "us-east-1"


def test_a_secret_without_its_key_id_is_an_error(db):
    with pytest.raises(ConfigError) as caught:
        config_load(
            text=_config(
                region="region: us-east-1", credentials="credentials: {aws_secret_access_key: s}"
            )
        )

    assert "credentials.aws_access_key_id: missing (required for bedrock" in str(caught.value)


def test_a_bedrock_deployment_without_any_region_is_an_error(db):
    with pytest.raises(ConfigError) as caught:
        config_load(text=_config())

    assert "region: missing (required for bedrock deployments" in str(caught.value)
    assert Deployment.objects.count() == 0


def test_the_deployment_region_overrides_the_provider_one(db):
    config_load(text=_config(deployment_region=", region: eu-central-1"))

    [route] = routing_table_build().candidates("chat", "claude")
    assert route.region == "eu-central-1"


def test_the_routing_table_leaves_out_a_bedrock_deployment_without_region(db):
    config_load(text=_config(region="region: us-east-1"))
    Provider.objects.filter(name="aws").update(region="")  # as an edit outside loadconfig may

    table = routing_table_build()

    assert table.candidates("chat", "claude") == ()
    [skipped] = table.skipped
    assert skipped.provider == "aws"
    assert skipped.reason.startswith("no region")
