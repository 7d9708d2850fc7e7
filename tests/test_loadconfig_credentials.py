"""loadconfig and provider credentials: `credentials:` checked against the kind's shape (every
problem at its path, at once), `api_key:` as its shorthand, changes reported by part name
(values only for the API version, which is no secret)."""

import pytest

from gateway.config import ConfigError, config_load
from routing.models import Provider

AZURE_KEY = "azure-config-key-0123456789abcdef"

AZURE = """
providers:
  - name: azure
    kind: azure_openai
    api_base: https://res.openai.azure.com
    credentials:
      api_key: ${{AZURE_TEST_KEY}}
      api_version: {version}
"""


@pytest.fixture(autouse=True)
def azure_key(monkeypatch):
    monkeypatch.setenv("AZURE_TEST_KEY", AZURE_KEY)


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    assert Provider.objects.count() == 0  # nothing applied
    return caught.value.errors


def test_azure_credentials_are_stored_encrypted_as_one_object(db):
    report = config_load(text=AZURE.format(version='"2024-10-21"'))
    assert report.lines == ["created   provider azure"]
    provider = Provider.objects.get(name="azure")
    assert provider.get_credentials() == {"api_key": AZURE_KEY, "api_version": "2024-10-21"}
    assert AZURE_KEY not in provider.credentials_encrypted


def test_an_unquoted_api_version_is_read_as_the_text_it_looks_like(db):
    # YAML makes 2024-10-21 a date; as an API version it can only mean the text.
    config_load(text=AZURE.format(version="2024-10-21"))
    assert Provider.objects.get().get_credentials()["api_version"] == "2024-10-21"


def test_loading_the_same_credentials_again_changes_nothing(db):
    config_load(text=AZURE.format(version="2024-10-21"))
    token = Provider.objects.get().credentials_encrypted
    report = config_load(text=AZURE.format(version="2024-10-21"))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert Provider.objects.get().credentials_encrypted == token  # not even re-encrypted


def test_a_changed_key_is_named_and_a_changed_api_version_shown(db, monkeypatch):
    config_load(text=AZURE.format(version="2024-10-21"))
    monkeypatch.setenv("AZURE_TEST_KEY", "azure-rotated-key-9876543210")
    report = config_load(text=AZURE.format(version="2025-01-01"))
    assert report.lines == [
        "updated   provider azure: api_key, api_version '2024-10-21' -> '2025-01-01'"
    ]
    assert Provider.objects.get().get_credentials() == {
        "api_key": "azure-rotated-key-9876543210",
        "api_version": "2025-01-01",
    }


def test_the_api_key_shorthand_and_credentials_are_the_same_credential(db, monkeypatch):
    shorthand = "providers:\n  - {name: p, kind: openai, api_key: '${AZURE_TEST_KEY}'}\n"
    longhand = (
        "providers:\n  - {name: p, kind: openai, credentials: {api_key: '${AZURE_TEST_KEY}'}}\n"
    )
    config_load(text=shorthand)
    assert Provider.objects.get().get_credentials() == {"api_key": AZURE_KEY}
    report = config_load(text=longhand)
    assert (report.updated, report.unchanged) == (0, 1)


def test_a_missing_part_is_an_error_at_its_path(db):
    text = """
providers:
  - {name: mock, kind: mock}
  - name: azure
    kind: azure_openai
    api_base: https://res.openai.azure.com
    credentials: {api_key: "${AZURE_TEST_KEY}"}
"""
    assert _errors(text) == [
        "providers[1] (azure).credentials.api_version: missing (required for azure_openai "
        "providers)"
    ]


def test_the_shorthand_alone_is_not_enough_for_azure(db):
    text = (
        "providers:\n  - {name: azure, kind: azure_openai, api_base: 'https://r.openai.azure.com',"
        " api_key: x}\n"
    )
    assert _errors(text) == [
        "providers[0] (azure).credentials.api_version: missing (required for azure_openai "
        "providers)"
    ]


def test_every_credential_problem_is_reported_at_once(db):
    text = """
providers:
  - name: azure
    kind: azure_openai
    credentials: {api_key: "${AZURE_TEST_KEY}", api_verison: "2024-10-21", region: eu}
  - {name: both, kind: openai, api_key: a, credentials: {api_key: b}}
  - {name: listed, kind: openai, credentials: [api_key]}
  - {name: mock, kind: mock, api_key: x}
  - {name: unset, kind: openai, credentials: {api_key: "${AZURE_UNSET_VARIABLE}"}}
"""
    assert _errors(text) == [
        "providers[0] (azure).api_base: missing (required for azure_openai providers)",
        "providers[0] (azure).credentials.api_verison: not a credential part of azure_openai "
        "providers (did you mean api_version?)",
        "providers[0] (azure).credentials.region: not a credential part of azure_openai "
        "providers (it takes: api_key, api_version)",
        "providers[0] (azure).credentials.api_version: missing (required for azure_openai "
        "providers)",
        "providers[1] (both).api_key: give the credential either as api_key or as credentials",
        "providers[2] (listed).credentials: must be a mapping of credential parts",
        "providers[3] (mock).api_key: not a credential part of mock providers (it takes: none)",
        "providers[4] (unset).credentials.api_key: environment variable AZURE_UNSET_VARIABLE is "
        "not set",
    ]


def test_a_value_that_is_not_text_is_refused_without_repeating_it(db):
    text = (
        "providers:\n  - {name: p, kind: openai, credentials: {api_key: [sk-secret-in-a-list]}}\n"
    )
    [error] = _errors(text)
    assert error == "providers[0] (p).credentials.api_key: must be text, not list"
    assert "sk-secret" not in error


def test_removing_the_credentials_removes_the_stored_one(db):
    config_load(text="providers:\n  - {name: p, kind: openai, credentials: {api_key: sk-abc}}\n")
    report = config_load(text="providers:\n  - {name: p, kind: openai, credentials: {}}\n")
    assert report.lines == ["updated   provider p: api_key"]
    assert not Provider.objects.get().has_credentials


def test_a_part_written_beside_the_api_key_is_pointed_under_credentials(db):
    text = (
        "providers:\n  - {name: azure, kind: azure_openai, api_base: 'https://r.openai.azure.com',"
        " api_key: x, api_version: '2024-10-21'}\n"
    )
    assert _errors(text) == [
        "providers[0] (azure).api_version: a credential part: put it under credentials",
        "providers[0] (azure).credentials.api_version: missing (required for azure_openai "
        "providers)",
    ]


@pytest.mark.parametrize("suffix", ["/openai", "/openai/", "/openai/v1"])
def test_an_azure_endpoint_copied_with_openai_in_its_path_is_refused(db, suffix):
    text = AZURE.format(version="2024-10-21").replace(
        "https://res.openai.azure.com", f"https://res.openai.azure.com{suffix}"
    )
    assert _errors(text) == [
        "providers[0] (azure).api_base: the resource's endpoint without /openai, e.g. "
        "https://my-resource.openai.azure.com (the gateway adds the rest)"
    ]


def test_an_azure_endpoint_behind_an_api_gateway_path_is_accepted(db):
    text = AZURE.format(version="2024-10-21").replace(
        "https://res.openai.azure.com", "https://apim.example.com/team-a"
    )
    config_load(text=text)
    assert Provider.objects.get().api_base == "https://apim.example.com/team-a"


def test_an_anthropic_provider_without_a_key_is_an_error(db):
    text = "providers:\n  - {name: claude, kind: anthropic}\n"
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    assert "providers[0] (claude).credentials.api_key: missing (required for anthropic" in str(
        caught.value
    )


def test_a_gemini_provider_without_a_key_is_an_error(db):
    text = "providers:\n  - {name: gemini, kind: gemini}\n"
    with pytest.raises(ConfigError) as caught:
        config_load(text=text)
    assert "providers[0] (gemini).credentials.api_key: missing (required for gemini" in str(
        caught.value
    )


def test_a_gemini_provider_needs_no_api_base(db):
    config_load(text="providers:\n  - {name: gemini, kind: gemini, api_key: AIza-test-key}\n")
    provider = Provider.objects.get()
    assert (provider.kind, provider.api_base, provider.get_api_key()) == (
        "gemini",
        "",
        "AIza-test-key",
    )
