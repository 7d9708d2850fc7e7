"""loadconfig: declarative, idempotent, all-or-nothing, and quiet about credentials."""

import re
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.config import FIELDS, ConfigError, config_load
from gateway.config_policy import POLICY_FIELDS
from gateway.config_routing import RULE_FIELDS
from routing.models import Deployment, Provider
from tenants.models import Team
from tests.helpers_config import MINIMAL_CONFIG, config_rows, run_loadconfig

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-upstream-example-0123456789"


@pytest.fixture
def load(tmp_path):
    return lambda text: run_loadconfig(tmp_path, text)


@pytest.fixture
def example_key(monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", UPSTREAM_KEY)
    return UPSTREAM_KEY


# --- The minimal example -------------------------------------------------------------------------


def test_minimal_example_loads(db, example_key, load):
    output = load(MINIMAL_CONFIG)
    provider = Provider.objects.get(name="openai-eu")
    assert provider.kind == Provider.Kind.OPENAI_COMPATIBLE
    assert provider.api_base == "https://eu.api.openai.com/v1"
    assert provider.region == "eu"
    assert provider.get_api_key() == UPSTREAM_KEY
    deployment = Deployment.objects.get(model_name="small")
    assert deployment.provider == provider
    assert deployment.upstream_model == "gpt-4o-mini"
    assert deployment.input_cost_per_mtok == Decimal("0.15")
    assert deployment.output_cost_per_mtok == Decimal("0.60")
    assert deployment.context_window == 128000
    assert Team.objects.get(slug="search").allowed_models == ["small"]
    assert "created   provider openai-eu" in output
    assert "created   team search" in output
    assert UPSTREAM_KEY not in output


def test_second_run_reports_nothing_created_or_updated_and_changes_nothing(db, example_key, load):
    load(MINIMAL_CONFIG)
    before = config_rows()
    output = load(MINIMAL_CONFIG)
    assert "0 created, 0 updated" in output
    assert "updated" not in output.replace("0 updated", "")
    # Same rows, same timestamps, and the credential was not even re-encrypted.
    assert config_rows() == before


def test_changed_price_is_reported_as_update_with_old_and_new_value(db, example_key, load):
    load(MINIMAL_CONFIG)
    output = load(MINIMAL_CONFIG.replace("input_cost_per_mtok: 0.15", "input_cost_per_mtok: 0.2"))
    line = next(line for line in output.splitlines() if line.startswith("updated"))
    assert "deployment small -> openai-eu/gpt-4o-mini" in line
    assert re.search(r"input_cost_per_mtok .*0\.15.* -> .*0\.2", line)
    assert "0 created, 1 updated" in output
    deployment = Deployment.objects.get(model_name="small")
    assert deployment.input_cost_per_mtok == Decimal("0.2")


def test_changed_api_key_is_reported_by_name_only(db, monkeypatch, example_key, load):
    load(MINIMAL_CONFIG)
    new_key = "sk-upstream-rotated-9876543210"
    monkeypatch.setenv("EXAMPLE_API_KEY", new_key)
    output = load(MINIMAL_CONFIG)
    assert "updated   provider openai-eu: api_key" in output
    assert new_key not in output
    assert UPSTREAM_KEY not in output
    assert Provider.objects.get(name="openai-eu").get_api_key() == new_key


def test_omitted_api_key_removes_the_stored_credential(db, example_key, load):
    # The file is the whole truth for the fields it manages, credentials included.
    load(MINIMAL_CONFIG)
    output = load(MINIMAL_CONFIG.replace("    api_key: ${EXAMPLE_API_KEY}\n", ""))
    assert "updated   provider openai-eu: api_key" in output
    assert not Provider.objects.get(name="openai-eu").has_credentials


def test_missing_environment_variable_is_an_error_and_changes_nothing(db, monkeypatch, load):
    monkeypatch.delenv("EXAMPLE_API_KEY", raising=False)
    with pytest.raises(
        CommandError,
        match=r"providers\[0\] \(openai-eu\)\.api_key: environment variable EXAMPLE_API_KEY is "
        r"not set; nothing was changed",
    ):
        load(MINIMAL_CONFIG)
    assert config_rows() == [[]] * 7


def test_error_late_in_file_rolls_back_earlier_items(db, example_key, load):
    bad = MINIMAL_CONFIG + "  - slug: broken\n    allowed_models: small\n"
    with pytest.raises(
        CommandError, match=r"teams\[1\] \(broken\)\.allowed_models: must be a list"
    ):
        load(bad)
    # The provider, deployment and first team were written before the error; none remain.
    assert config_rows() == [[]] * 7


def test_failed_update_keeps_the_previous_configuration(db, example_key, load):
    load(MINIMAL_CONFIG)
    before = config_rows()
    changed = MINIMAL_CONFIG.replace("region: eu", "region: us").replace(
        "output_cost_per_mtok: 0.60", "output_cost_per_mtok: -1"
    )
    with pytest.raises(CommandError, match="must be >= 0"):
        load(changed)
    assert config_rows() == before


# --- Clear errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "routes: []\n",
            "routes: unknown top-level section "
            "(known: providers, models, organizations, teams, routing_rules)",
        ),
        (
            "providers:\n  - {name: p, kind: mock, apikey: x}\n",
            "providers[0] (p).apikey: unknown field (did you mean api_key?)",
        ),
        (
            "models:\n  - {name: m, deployments: [{provider: p, model: x, price: 1}]}\n",
            "models[0] (m).deployments[0] (p).price: unknown field (known: attempt_timeout_s,",
        ),
        ("teams:\n  - {slug: t, members: []}\n", "teams[0] (t).members: unknown field"),
        (
            "providers:\n  - {name: p, kind: azure-openai}\n",
            "providers[0] (p).kind: 'azure-openai' is not one of ",
        ),
        ("providers:\n  - {name: p}\n", "providers[0] (p).kind: missing (required)"),
        (
            "providers:\n  - {name: p, kind: openai_compatible}\n",
            "providers[0] (p).api_base: missing (required for openai_compatible providers)",
        ),
        (
            "models:\n  - {name: m, deployments: [{provider: nowhere, model: x}]}\n",
            "models[0] (m).deployments[0] (nowhere).provider: 'nowhere' names no provider",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "input_cost_per_mtok: -0.5}]}\n",
            "models[0] (m).deployments[0] (p).input_cost_per_mtok: must be >= 0",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "output_cost_per_mtok: cheap}]}\n",
            "models[0] (m).deployments[0] (p).output_cost_per_mtok: not a number: 'cheap'",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, mode: image, deployments: [{provider: p, model: x}]}\n",
            "models[0] (m).mode: 'image' is not one of chat, embedding",
        ),
        ("providers: {name: p}\n", "providers: must be a list of mappings"),
        ("providers: [just-a-name]\n", "providers[0]: must be a mapping"),
        (
            "providers:\n  - {name: p, kind: mock, enabled: 'false'}\n",
            "providers[0] (p).enabled: must be true or false, not 'false'",
        ),
        ("- just\n- a list\n", "must be a mapping at the top level"),
        ("providers: [\n", "not valid YAML"),
    ],
)
def test_bad_configuration_is_a_clear_error_and_changes_nothing(db, text, message):
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert message in str(excinfo.value)
    assert config_rows() == [[]] * 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Values that only the model's own validation can catch: still a ConfigError that names
        # the item, not a traceback from the command.
        ("providers:\n  - {name: Open AI, kind: mock}\n", "providers[0] (Open AI).name: "),
        (
            "providers:\n  - {name: p, kind: openai_compatible, api_base: not-a-url}\n",
            "providers[0] (p).api_base: Enter a valid URL",
        ),
        ("providers:\n  - {name: p, kind: mock, timeout_s: 0}\n", "providers[0] (p).timeout_s: "),
        (
            "providers:\n  - {name: p, kind: mock, timeout_s: soon}\n",
            "providers[0] (p).timeout_s: not a number",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, context_window: big}]}\n",
            "models[0] (m).deployments[0] (p).context_window: not a number",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "input_cost_per_mtok: .nan}]}\n",
            "models[0] (m).deployments[0] (p).input_cost_per_mtok: not a number",
        ),
        ("teams:\n  - {slug: not a slug}\n", "teams[0] (not a slug).slug: "),
        ("teams:\n  - {slug: t, organization: Big Co}\n", "teams[0] (t).organization: "),
        (
            "teams:\n  - {slug: t, projects: [{slug: a b}]}\n",
            "teams[0] (t).projects[0] (a b).slug: ",
        ),
    ],
)
def test_invalid_field_values_are_config_errors_naming_the_item(db, text, message):
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert message in str(excinfo.value)
    assert config_rows() == [[]] * 7


def test_command_turns_bad_file_into_command_error(db, load):
    with pytest.raises(CommandError, match=r"routes: unknown top-level section"):
        load("routes: []\n")


def test_command_reports_unreadable_file(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("loadconfig", str(tmp_path / "missing.yaml"))


# --- The shipped example ------------------------------------------------------------------------

EXAMPLE = ROOT / "config" / "example.yaml"


def _set_referenced_env(monkeypatch, text: str) -> None:
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)):
        monkeypatch.setenv(name, f"test-value-for-{name}")


def test_example_file_documents_every_accepted_field():
    import yaml

    doc = yaml.safe_load(EXAMPLE.read_text())
    assert set(doc) == {"providers", "models", "organizations", "teams", "routing_rules"}
    assert set().union(*(r.keys() for r in doc["routing_rules"])) == RULE_FIELDS
    used = {
        "organizations": set().union(*(o.keys() for o in doc["organizations"])),
        "providers": set().union(*(p.keys() for p in doc["providers"])),
        "models": set().union(*(m.keys() for m in doc["models"])),
        "deployments": set().union(*(d.keys() for m in doc["models"] for d in m["deployments"])),
        "teams": set().union(*(t.keys() for t in doc["teams"])),
        "projects": set().union(*(p.keys() for t in doc["teams"] for p in t.get("projects", []))),
    }
    assert used == {level: set(names) for level, names in FIELDS.items()}
    policies = [o["policy"] for o in doc["organizations"]] + [
        t["policy"] for t in doc["teams"] if "policy" in t
    ]
    assert set().union(*policies) == POLICY_FIELDS
    kinds = {p["kind"] for p in doc["providers"]}
    assert kinds >= {
        "openai",
        "openai_compatible",
        "azure_openai",
        "anthropic",
        "gemini",
        "bedrock",
        "mock",
    }
    assert {m.get("mode", "chat") for m in doc["models"]} == {"chat", "embedding"}


def test_example_file_loads_and_is_idempotent(db, monkeypatch):
    text = EXAMPLE.read_text()
    _set_referenced_env(monkeypatch, text)
    out = StringIO()
    call_command("loadconfig", str(EXAMPLE), stdout=out)
    assert Provider.objects.count() == 7
    assert Deployment.objects.filter(model_name="small").count() == 3
    assert {d.mode for d in Deployment.objects.filter(model_name="embed")} == {
        Deployment.Mode.EMBEDDING
    }
    assert Deployment.objects.get(model_name="gemini-embed").mode == Deployment.Mode.EMBEDDING
    assert Provider.objects.get(name="gemini").get_credentials() == {
        "api_key": "test-value-for-GEMINI_API_KEY"
    }
    team = Team.objects.get(slug="search")
    assert team.organization.slug == "acme"
    assert team.projects.get().slug == "ranking"
    assert Provider.objects.get(name="openai-eu").get_api_key() == "test-value-for-EXAMPLE_API_KEY"
    assert Provider.objects.get(name="azure-eu").get_credentials() == {
        "api_key": "test-value-for-AZURE_OPENAI_API_KEY",
        "api_version": "2024-10-21",
    }
    assert Provider.objects.get(name="bedrock-us").get_credentials() == {
        "aws_access_key_id": "test-value-for-AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "test-value-for-AWS_SECRET_ACCESS_KEY",
    }
    before = config_rows()
    out = StringIO()
    call_command("loadconfig", str(EXAMPLE), stdout=out)
    assert "0 created, 0 updated" in out.getvalue()
    assert config_rows() == before
