"""Configuration text shared by tests, and running loadconfig the way an operator does."""

from io import StringIO
from pathlib import Path

from django.core.management import call_command

from routing.models import Deployment, ModelGroup, Provider, RoutingRule
from tenants.models import Organization, Project, Team

# The smallest useful configuration: one OpenAI-compatible provider (credential from the
# environment), one model, one team.
MINIMAL_CONFIG_API_BASE = "https://eu.api.openai.com/v1"
MINIMAL_CONFIG = """
providers:
  - name: openai-eu
    kind: openai_compatible
    api_base: https://eu.api.openai.com/v1
    api_key: ${EXAMPLE_API_KEY}
    region: eu
models:
  - name: small
    deployments:
      - provider: openai-eu
        model: gpt-4o-mini
        input_cost_per_mtok: 0.15
        output_cost_per_mtok: 0.60
        context_window: 128000
teams:
  - slug: search
    allowed_models: [small]
"""


def run_loadconfig(directory: Path, text: str) -> str:
    """Run the command on a file, as an operator would; returns what it printed."""
    path = directory / f"config-{len(list(directory.glob('config-*.yaml')))}.yaml"
    path.write_text(text)
    out, err = StringIO(), StringIO()
    call_command("loadconfig", str(path), stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def config_rows() -> list:
    """Every configurable row, to show that a run changed nothing."""
    return [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
        list(Organization.objects.order_by("pk").values()),
        list(Project.objects.order_by("pk").values()),
        list(ModelGroup.objects.order_by("pk").values()),
        list(RoutingRule.objects.order_by("pk").values()),
    ]
