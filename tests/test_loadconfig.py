"""loadconfig: declarative, idempotent, all-or-nothing, and quiet about credentials."""

import re
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.config import FIELDS, ConfigError, config_load
from routing.models import Deployment, Provider
from tenants.models import Organization, Project, Team
from tests.helpers_config import MINIMAL_CONFIG

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-upstream-example-0123456789"


@pytest.fixture
def example_key(monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", UPSTREAM_KEY)
    return UPSTREAM_KEY


@pytest.fixture
def load(tmp_path):
    """Run the command the way an operator would, on a file; returns what it printed."""
    files = iter(range(10**6))

    def _load(text: str) -> str:
        path = tmp_path / f"config-{next(files)}.yaml"
        path.write_text(text)
        out, err = StringIO(), StringIO()
        call_command("loadconfig", str(path), stdout=out, stderr=err)
        return out.getvalue() + err.getvalue()

    return _load


def _snapshot() -> list:
    """Every configurable row, to show that a run changed nothing."""
    return [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
        list(Organization.objects.order_by("pk").values()),
        list(Project.objects.order_by("pk").values()),
    ]


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
    before = _snapshot()
    output = load(MINIMAL_CONFIG)
    assert "0 created, 0 updated" in output
    assert "updated" not in output.replace("0 updated", "")
    # Same rows, same timestamps, and the credential was not even re-encrypted.
    assert _snapshot() == before


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
    assert not Provider.objects.get(name="openai-eu").has_api_key


def test_missing_environment_variable_is_an_error_and_changes_nothing(db, monkeypatch, load):
    monkeypatch.delenv("EXAMPLE_API_KEY", raising=False)
    with pytest.raises(CommandError, match=r"EXAMPLE_API_KEY is not set.*nothing was changed"):
        load(MINIMAL_CONFIG)
    assert _snapshot() == [[], [], [], [], []]


def test_error_late_in_file_rolls_back_earlier_items(db, example_key, load):
    bad = MINIMAL_CONFIG + "  - slug: broken\n    allowed_models: small\n"
    with pytest.raises(CommandError, match="team broken: allowed_models must be a list"):
        load(bad)
    # The provider, deployment and first team were written before the error; none remain.
    assert _snapshot() == [[], [], [], [], []]


def test_failed_update_keeps_the_previous_configuration(db, example_key, load):
    load(MINIMAL_CONFIG)
    before = _snapshot()
    changed = MINIMAL_CONFIG.replace("region: eu", "region: us").replace(
        "output_cost_per_mtok: 0.60", "output_cost_per_mtok: -1"
    )
    with pytest.raises(CommandError, match="must be >= 0"):
        load(changed)
    assert _snapshot() == before


# --- Clear errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: []\n", "unknown top-level section(s): routes"),
        (
            "providers:\n  - {name: p, kind: mock, apikey: x}\n",
            "provider p: unknown field(s) apikey",
        ),
        (
            "models:\n  - {name: m, deployments: [{provider: p, model: x, price: 1}]}\n",
            "model m deployment 0: unknown field(s) price",
        ),
        ("teams:\n  - {slug: t, members: []}\n", "team t: unknown field(s) members"),
        ("providers:\n  - {name: p, kind: azure}\n", "provider p: kind must be one of"),
        ("providers:\n  - {name: p}\n", "provider p: missing field(s) kind"),
        (
            "providers:\n  - {name: p, kind: openai_compatible}\n",
            "openai_compatible providers need api_base",
        ),
        (
            "models:\n  - {name: m, deployments: [{provider: nowhere, model: x}]}\n",
            "model m deployment 0: unknown provider 'nowhere'",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "input_cost_per_mtok: -0.5}]}\n",
            "model m deployment 0: must be >= 0",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "output_cost_per_mtok: cheap}]}\n",
            "not a number",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, mode: image, deployments: [{provider: p, model: x}]}\n",
            "model m: mode must be one of",
        ),
        ("providers: {name: p}\n", "'providers' must be a list of mappings"),
        ("- just\n- a list\n", "must be a mapping at the top level"),
        ("providers: [\n", "not valid YAML"),
    ],
)
def test_bad_configuration_is_a_clear_error_and_changes_nothing(db, text, message):
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert message in str(excinfo.value)
    assert _snapshot() == [[], [], [], [], []]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Values that only the model's own validation can catch: still a ConfigError that names
        # the item, not a traceback from the command.
        ("providers:\n  - {name: Open AI, kind: mock}\n", "provider Open AI"),
        (
            "providers:\n  - {name: p, kind: openai_compatible, api_base: not-a-url}\n",
            "provider p",
        ),
        ("providers:\n  - {name: p, kind: mock, timeout_s: 0}\n", "provider p"),
        ("providers:\n  - {name: p, kind: mock, timeout_s: soon}\n", "provider p"),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, context_window: big}]}\n",
            "model m deployment 0",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x, "
            "input_cost_per_mtok: .nan}]}\n",
            "model m deployment 0",
        ),
        ("teams:\n  - {slug: not a slug}\n", "team not a slug"),
        ("teams:\n  - {slug: t, organization: Big Co}\n", "team t organization Big Co"),
        ("teams:\n  - {slug: t, projects: [{slug: a b}]}\n", "team t project a b"),
    ],
)
def test_invalid_field_values_are_config_errors_naming_the_item(db, text, message):
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert message in str(excinfo.value)
    assert _snapshot() == [[], [], [], [], []]


def test_command_turns_bad_file_into_command_error(db, load):
    with pytest.raises(CommandError, match=r"unknown top-level section\(s\): routes"):
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
    assert set(doc) == {"providers", "models", "teams"}
    used = {
        "providers": set().union(*(p.keys() for p in doc["providers"])),
        "models": set().union(*(m.keys() for m in doc["models"])),
        "deployments": set().union(*(d.keys() for m in doc["models"] for d in m["deployments"])),
        "teams": set().union(*(t.keys() for t in doc["teams"])),
        "projects": set().union(*(p.keys() for t in doc["teams"] for p in t.get("projects", []))),
    }
    assert used == {level: set(names) for level, names in FIELDS.items()}
    kinds = {p["kind"] for p in doc["providers"]}
    assert kinds >= {"openai_compatible", "mock"}
    assert {m.get("mode", "chat") for m in doc["models"]} == {"chat", "embedding"}


def test_example_file_loads_and_is_idempotent(db, monkeypatch):
    text = EXAMPLE.read_text()
    _set_referenced_env(monkeypatch, text)
    out = StringIO()
    call_command("loadconfig", str(EXAMPLE), stdout=out)
    assert Provider.objects.count() == 3
    assert Deployment.objects.filter(model_name="small").count() == 2
    assert Deployment.objects.get(model_name="embed").mode == Deployment.Mode.EMBEDDING
    team = Team.objects.get(slug="search")
    assert team.organization.slug == "acme"
    assert team.projects.get().slug == "ranking"
    assert Provider.objects.get(name="openai-eu").get_api_key() == "test-value-for-EXAMPLE_API_KEY"
    before = _snapshot()
    out = StringIO()
    call_command("loadconfig", str(EXAMPLE), stdout=out)
    assert "0 created, 0 updated" in out.getvalue()
    assert _snapshot() == before
