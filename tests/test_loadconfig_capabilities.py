"""loadconfig: a deployment's `capabilities`, their defaults, their errors, and the older
top-level `context_window`."""

import pytest

from gateway.config import ConfigError, config_load
from routing.models import Deployment
from tests.helpers_config import config_rows

CONFIG = """
providers:
  - {{name: p, kind: mock}}
models:
  - name: m
    deployments:
      - provider: p
        model: x
{deployment}
"""


def _config(deployment: str) -> str:
    lines = deployment.strip("\n").splitlines()
    return CONFIG.format(deployment="\n".join(f"        {line}" for line in lines))


def _deployment() -> Deployment:
    return Deployment.objects.get(model_name="m")


def _errors(deployment: str) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        config_load(text=_config(deployment))
    assert config_rows() == [[]] * 7  # nothing applied
    return excinfo.value.errors


WHERE = "models[0] (m).deployments[0] (p)"


def test_capabilities_are_stored_on_the_deployment(db):
    config_load(
        text=_config("""
capabilities:
  context_window: 32768
  max_output_tokens: 4096
  tools: false
  vision: false
  json_mode: true
  streaming: false
""")
    )
    d = _deployment()
    assert (d.context_window, d.max_output_tokens) == (32768, 4096)
    assert (d.supports_tools, d.supports_vision, d.supports_json_mode, d.supports_streaming) == (
        False,
        False,
        True,
        False,
    )


def test_without_capabilities_every_feature_is_on_and_limits_are_unknown(db):
    config_load(text=_config(""))
    d = _deployment()
    assert (d.context_window, d.max_output_tokens) == (None, None)
    assert d.supports_tools and d.supports_vision and d.supports_json_mode
    assert d.supports_streaming


def test_names_left_out_of_capabilities_keep_their_defaults(db):
    config_load(text=_config("capabilities: {vision: false}"))
    d = _deployment()
    assert not d.supports_vision
    assert d.supports_tools and d.supports_json_mode and d.supports_streaming
    assert d.max_output_tokens is None


def test_top_level_context_window_is_still_accepted(db):
    config_load(text=_config("context_window: 8192"))
    assert _deployment().context_window == 8192


def test_context_window_in_both_places_with_the_same_value_is_accepted(db):
    config_load(text=_config("context_window: 8192\ncapabilities: {context_window: 8192}"))
    assert _deployment().context_window == 8192


def test_context_window_in_both_places_with_different_values_is_an_error(db):
    errors = _errors("context_window: 8192\ncapabilities: {context_window: 4096}")
    assert errors == [
        f"{WHERE}.capabilities.context_window: 4096 differs from the deployment's "
        "context_window (8192); give it in one place"
    ]


def test_unknown_capability_is_an_error_naming_the_known_ones(db):
    known = "known: context_window, json_mode, max_output_tokens, streaming, tools, vision"
    errors = _errors("capabilities: {function_calling: true, visoin: false}")
    assert errors == [
        f"{WHERE}.capabilities.function_calling: unknown capability ({known})",
        f"{WHERE}.capabilities.visoin: unknown capability (did you mean vision? {known})",
    ]


def test_every_bad_capability_value_is_reported_at_once(db):
    errors = _errors("""
context_window: 1.5
capabilities:
  max_output_tokens: 0
  tools: "false"
  vision: yes please
  streaming: null
""")
    assert errors == [
        f"{WHERE}.capabilities.tools: must be true or false, not 'false'",
        f"{WHERE}.capabilities.vision: must be true or false, not 'yes please'",
        f"{WHERE}.capabilities.streaming: must be true or false, not None",
        f"{WHERE}.capabilities.max_output_tokens: must be at least 1",
        f"{WHERE}.context_window: must be a whole number of tokens, not 1.5",
    ]


def test_capabilities_must_be_a_mapping(db):
    [error] = _errors("capabilities: [tools, vision]")
    assert error.startswith(f"{WHERE}.capabilities: must be a mapping of capability names")
    assert "known: context_window, json_mode" in error


def test_max_output_tokens_above_the_context_window_is_an_error(db):
    errors = _errors("context_window: 4096\ncapabilities: {max_output_tokens: 8192}")
    assert errors == [
        f"{WHERE}.capabilities.max_output_tokens: 8192 is more than the context window (4096), "
        "which holds the prompt and the answer"
    ]


def test_token_counts_from_the_environment_are_read_as_numbers(db, monkeypatch):
    monkeypatch.setenv("OUT_TOKENS", "2048")
    config_load(text=_config('capabilities: {max_output_tokens: "${OUT_TOKENS}"}'))
    assert _deployment().max_output_tokens == 2048


def test_a_changed_capability_is_reported_and_a_second_load_changes_nothing(db):
    config_load(text=_config("capabilities: {tools: true}"))
    changed = _config("capabilities: {tools: false, max_output_tokens: 1000}")
    report = config_load(text=changed)
    [line] = [line for line in report.lines if line.startswith("updated")]
    assert "supports_tools True -> False" in line
    assert "max_output_tokens None -> 1000" in line
    before = config_rows()
    assert config_load(text=changed).summary() == "0 created, 0 updated, 2 unchanged"
    assert config_rows() == before


def test_leaving_capabilities_out_on_a_later_load_restores_the_defaults(db):
    # Like every field: the file is the whole truth for what it manages.
    config_load(text=_config("capabilities: {vision: false, context_window: 1000}"))
    config_load(text=_config(""))
    d = _deployment()
    assert d.supports_vision
    assert d.context_window is None
