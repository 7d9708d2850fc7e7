"""loadconfig: every error of a file at once, each naming its item and field; references that
name nothing and items listed twice are errors; every run counts the same items."""

import re
from pathlib import Path

import pytest
from django.core.management import CommandError

from gateway.config import ConfigError, config_load
from routing.providers import known_kinds
from tenants.models import Team
from tests.helpers_config import config_rows, run_loadconfig

# Every kind, as the error about an unknown one lists them.
KNOWN_KINDS = ", ".join(known_kinds())
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


@pytest.fixture
def load(tmp_path):
    return lambda text: run_loadconfig(tmp_path, text)


def _set_referenced_env(monkeypatch, text: str) -> None:
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)):
        monkeypatch.setenv(name, f"test-value-for-{name}")


# --- Every error at once, each naming its field --------------------------------------------------

TWO_MODELS = """
providers:
  - {name: p, kind: mock}
models:
  - {name: small, deployments: [{provider: p, model: s}]}
  - {name: large, deployments: [{provider: p, model: l}]}
"""


def test_all_errors_of_a_file_are_reported_at_once_and_nothing_is_applied(db):
    text = """
providers:
  - {name: p, kind: mock, timeout_s: soon}
  - {name: q, kind: azure-openai}
models:
  - {name: m, deployments: [{provider: p, model: x, input_cost_per_mtok: -1}]}
teams:
  - {slug: t, allowed_models: [m, n], colour: blue}
"""
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert excinfo.value.errors == [
        "providers[0] (p).timeout_s: not a number: 'soon'",
        f"providers[1] (q).kind: 'azure-openai' is not one of {KNOWN_KINDS}",
        "models[0] (m).deployments[0] (p).input_cost_per_mtok: must be >= 0 with at most "
        "6 decimals",
        "teams[0] (t).colour: unknown field (known: allowed_models, compliance, cost_center, "
        "is_active, model_limits, name, organization, policy, projects, slug)",
        "teams[0] (t).allowed_models[1]: 'n' names no model (known: m)",
    ]
    assert str(excinfo.value).startswith("5 errors:\n  providers[0] (p).timeout_s")
    assert config_rows() == [[]] * 7


def test_command_lists_every_error_under_one_line(db, load):
    with pytest.raises(CommandError) as excinfo:
        load("providers:\n  - {name: p, kind: azure-openai}\n  - {name: q}\n")
    message = str(excinfo.value)
    assert message.splitlines()[0].endswith(": 2 errors; nothing was changed:")
    assert message.splitlines()[1:] == [
        f"  providers[0] (p).kind: 'azure-openai' is not one of {KNOWN_KINDS}",
        "  providers[1] (q).kind: missing (required)",
    ]


def test_allowed_model_typo_is_refused_naming_the_entry_and_the_known_models(db):
    text = TWO_MODELS + "teams:\n  - {slug: a}\n  - {slug: b}\n  - {slug: search, "
    text += "allowed_models: [small, smal]}\n"
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert excinfo.value.errors == [
        "teams[2] (search).allowed_models[1]: 'smal' names no model (known: large, small)"
    ]
    assert not Team.objects.exists()


def test_allowed_models_may_name_models_already_in_the_database_or_all(db):
    config_load(text=TWO_MODELS)
    config_load(
        text="teams:\n  - {slug: a, allowed_models: [large]}\n"
        "  - {slug: b, allowed_models: ['*']}\n"
    )
    assert Team.objects.get(slug="a").allowed_models == ["large"]
    assert Team.objects.get(slug="b").allowed_models == ["*"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "providers:\n  - {name: p, kind: mock}\n  - {name: p, kind: openai, region: us}\n",
            "providers[1] (p).name: 'p' is listed twice (first at providers[0])",
        ),
        (
            TWO_MODELS + "  - {name: small, deployments: [{provider: p, model: other}]}\n",
            "models[2] (small).name: 'small' is listed twice (first at models[0])",
        ),
        (
            "providers:\n  - {name: p, kind: mock}\n"
            "models:\n  - {name: m, deployments: [{provider: p, model: x}, "
            "{provider: p, model: x, input_cost_per_mtok: 1}]}\n",
            "models[0] (m).deployments[1] (p): provider 'p' with model 'x' is listed twice "
            "(first at models[0] (m).deployments[0])",
        ),
        (
            "teams:\n  - {slug: t}\n  - {slug: u}\n  - {slug: t, cost_center: X}\n",
            "teams[2] (t).slug: 't' is listed twice (first at teams[0])",
        ),
        (
            "teams:\n  - {slug: t, projects: [{slug: r}, {slug: r, name: Other}]}\n",
            "teams[0] (t).projects[1] (r).slug: 'r' is listed twice (first at "
            "teams[0] (t).projects[0])",
        ),
    ],
)
def test_an_item_listed_twice_is_refused(db, text, message):
    # Which of the two should win is a guess; the file must say one thing.
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert excinfo.value.errors == [message]
    assert config_rows() == [[]] * 7


def test_a_deployment_of_a_broken_provider_is_not_reported_twice(db):
    text = (
        "providers:\n  - {name: p, kind: nope}\n"
        "models:\n  - {name: m, deployments: [{provider: p, model: x}]}\n"
    )
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=text)
    assert [e.split(":")[0] for e in excinfo.value.errors] == ["providers[0] (p).kind"]


# --- Counting ------------------------------------------------------------------------------------


def _totals(output: str) -> int:
    created, updated, unchanged = map(
        int, re.search(r"(\d+) created, (\d+) updated, (\d+) unchanged", output).groups()
    )
    return created + updated + unchanged


def test_runs_count_the_same_items_every_time(db, monkeypatch, load):
    # Organizations created on the way used to be counted on the first run only.
    text = EXAMPLE.read_text()
    _set_referenced_env(monkeypatch, text)
    first, second = load(text), load(text)
    assert _totals(first) == _totals(second)
    assert "created   organization acme" in first
    assert "created   organization default" in first
    assert "created   project search/ranking" in first
    # 7 providers, 9 deployments, 2 organizations, 2 teams, 1 project, 3 policies (acme,
    # search, search/ranking), 2 model limits, 2 agreements (openai-eu and its sub-processor)
    # and 1 set of compliance requirements (search's; acme's is empty, so none is stored).
    assert "32 created, 0 updated, 0 unchanged" in first
    assert "0 created, 0 updated, 32 unchanged" in second


def test_an_organization_shared_by_teams_is_counted_once(db, load):
    text = "teams:\n  - {slug: a, organization: acme}\n  - {slug: b, organization: acme}\n"
    assert "3 created, 0 updated, 0 unchanged" in load(text)
    assert "0 created, 0 updated, 3 unchanged" in load(text)
