"""Structured provider credentials: one encrypted object of named parts, shaped per kind; the
routing table carries them decrypted, never prints them, and scrubs every secret part from
relayed text. Tokens of the earlier format (a bare API key) are converted by a migration and
still read meanwhile."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from routing import crypto
from routing.credentials import (
    Credentials,
    credential_changes,
    decrypt_credentials,
    encrypt_credentials,
)
from routing.kinds import (
    AWS_CREDENTIALS,
    AZURE_OPENAI_CREDENTIALS,
    KINDS,
    NO_CREDENTIALS,
    OPTIONAL_API_KEY,
    PARTS,
)
from routing.models import Provider
from routing.selectors import Route, _secret_forms, provider_problem, routing_table_build

from .factories import DeploymentFactory, ProviderFactory

AZURE = {"api_key": "azure-key-0123456789abcdef", "api_version": "2024-10-21"}
AWS = {
    "aws_access_key_id": "AKIAEXAMPLEKEYID0001",
    "aws_secret_access_key": "aws-secret-0123456789abcdefghij",
    "aws_session_token": "aws-session-token-0123456789abcdef",
}


@pytest.fixture(autouse=True)
def _fresh_fernet():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


# --- Shapes ------------------------------------------------------------------------------------


def test_every_kind_declares_a_shape_made_of_known_parts():
    for kind in KINDS:
        assert set(kind.credentials.names) <= set(PARTS), kind.value


def test_azure_needs_both_its_key_and_its_api_version():
    shape = AZURE_OPENAI_CREDENTIALS
    assert shape.missing(set()) == ["api_key", "api_version"]
    assert shape.missing({"api_key"}) == ["api_version"]
    assert shape.missing(set(AZURE)) == []
    assert shape.unknown({"api_key", "aws_session_token"}) == ["aws_session_token"]


def test_an_optional_api_key_may_be_left_out_altogether():
    assert OPTIONAL_API_KEY.missing(set()) == []
    assert OPTIONAL_API_KEY.unknown({"api_version"}) == ["api_version"]
    assert NO_CREDENTIALS.unknown({"api_key"}) == ["api_key"]


def test_aws_credentials_are_a_pair_with_an_optional_token_or_none_for_the_credential_chain():
    shape = AWS_CREDENTIALS
    assert shape.missing(set()) == []  # the environment's AWS credential chain
    assert shape.missing({"aws_access_key_id"}) == ["aws_secret_access_key"]
    assert shape.missing({"aws_session_token"}) == ["aws_access_key_id", "aws_secret_access_key"]
    assert shape.missing(set(AWS)) == []
    assert shape.missing(set(AWS) - {"aws_session_token"}) == []
    assert "credential chain" in shape.describe()


# --- The value: never printed, secrets known ----------------------------------------------------


def test_credentials_print_part_names_never_values():
    credentials = Credentials(AWS)
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert all(value not in text for value in AWS.values())
    assert "aws_secret_access_key" in repr(credentials)


def test_every_part_but_the_api_version_is_a_secret():
    assert set(Credentials(AZURE).secret_values()) == {AZURE["api_key"]}
    assert set(Credentials(AWS).secret_values()) == set(AWS.values())
    # A part this version does not know is kept secret.
    assert Credentials({"future_part": "x" * 12}).secret_values() == ("x" * 12,)


def test_empty_parts_are_no_parts():
    assert Credentials({"api_key": "", "api_version": "v"}) == {"api_version": "v"}
    assert encrypt_credentials({"api_key": ""}) == ""


def test_changes_name_secret_parts_and_show_only_the_api_version():
    old = Credentials(AZURE)
    new = Credentials({"api_key": "rotated-key-9876543210", "api_version": "2025-01-01"})
    changes = credential_changes(old, new)
    assert changes == ["api_key", "api_version '2024-10-21' -> '2025-01-01'"]
    assert all(AZURE["api_key"] not in c and "rotated" not in c for c in changes)


# --- At rest -------------------------------------------------------------------------------------


def _raw_column(provider: Provider) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials_encrypted FROM routing_provider WHERE id = %s", [provider.pk]
        )
        return cursor.fetchone()[0]


def test_the_whole_object_is_one_token_holding_no_plaintext(db):
    provider = ProviderFactory(kind="azure_openai", api_base="https://res.openai.azure.com")
    provider.set_credentials(AWS | AZURE)
    provider.save()
    raw = _raw_column(provider)
    assert raw.count(".") == 0 and raw.startswith("gAAAA")  # one Fernet token
    assert all(value not in raw for value in (AWS | AZURE).values())
    assert "api_version" not in raw and "2024-10-21" not in raw
    assert Provider.objects.get(pk=provider.pk).get_credentials() == AWS | AZURE


def test_a_token_of_the_earlier_format_still_reads_as_an_api_key():
    token = crypto.encrypt("sk-legacy-0123456789")
    assert decrypt_credentials(token) == {"api_key": "sk-legacy-0123456789"}


def test_a_token_that_is_not_an_object_of_text_is_refused_without_its_content():
    for plaintext in ('{"api_key": 12345678901}', '{"api_key": "x"', "{[]}"):
        with pytest.raises(ValueError) as caught:
            decrypt_credentials(crypto.encrypt(plaintext))
        assert "12345678901" not in str(caught.value)


def test_rotation_reencrypts_the_whole_object(db):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(GATEWAY_ENCRYPTION_KEYS=[old_key]):
        crypto._fernet.cache_clear()
        token = encrypt_credentials(AZURE)
    with override_settings(GATEWAY_ENCRYPTION_KEYS=[new_key, old_key]):
        crypto._fernet.cache_clear()
        rotated = crypto.rotate(token)
    with override_settings(GATEWAY_ENCRYPTION_KEYS=[new_key]):
        crypto._fernet.cache_clear()
        assert decrypt_credentials(rotated) == AZURE
    crypto._fernet.cache_clear()


# --- In the routing table ----------------------------------------------------------------------


def _azure_provider(**parts) -> Provider:
    provider = ProviderFactory(
        name="azure", kind="azure_openai", api_base="https://res.openai.azure.com"
    )
    provider.set_credentials(parts)
    provider.save()
    DeploymentFactory(provider=provider, model_name="small", upstream_model="gpt-4o-mini")
    return provider


def test_the_route_carries_the_decrypted_object_and_never_prints_it(db):
    _azure_provider(**AZURE)
    [route] = routing_table_build().candidates("chat", "small")
    assert route.credentials == AZURE
    assert route.api_key == AZURE["api_key"]
    assert AZURE["api_key"] not in repr(route) and AZURE["api_key"] not in str(route)


def test_a_provider_whose_credential_lacks_a_required_part_is_left_out(db):
    provider = _azure_provider(api_key=AZURE["api_key"])
    table = routing_table_build()
    assert table.candidates("chat", "small") == ()
    reason = "credential lacks api_version (needed by azure_openai providers)"
    assert [s.as_dict() for s in table.skipped] == [{"provider": "azure", "reason": reason}]
    assert provider_problem(provider) == reason


def test_a_part_the_kind_does_not_use_does_not_stop_routing(db):
    # A mock provider saved with an API key before kinds had shapes keeps working.
    provider = ProviderFactory(name="mock", kind="mock")
    provider.set_api_key("sk-left-over-0123456789")
    provider.save()
    DeploymentFactory(provider=provider, model_name="demo")
    assert len(routing_table_build().candidates("chat", "demo")) == 1


def _route(credentials: dict) -> Route:
    parts = Credentials(credentials)
    return Route(
        deployment_id=1,
        model_name="m",
        upstream_model="u",
        mode="chat",
        provider_id=1,
        provider_name="p",
        provider_kind="azure_openai",
        api_base="",
        credentials=parts,
        secret_forms=_secret_forms(*parts.secret_values()),
    )


def test_redaction_scrubs_every_secret_part():
    route = _route(AWS)
    text = " ".join(AWS.values()).encode()
    assert route.redact(text) == b"[REDACTED] [REDACTED] [REDACTED]"


def test_redaction_leaves_the_api_version_in_answers():
    route = _route(AZURE)
    answer = f"Released on {AZURE['api_version']} with key {AZURE['api_key']}".encode()
    assert route.redact(answer) == b"Released on 2024-10-21 with key [REDACTED]"


# --- The migration -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_converts_bare_keys_and_back():
    before, after = (
        ("routing", "0005_deployment_capabilities"),
        ("routing", "0006_provider_credentials"),
    )
    executor = MigrationExecutor(connection)
    # Every app's latest, not only routing's: migrating routing back also unapplies the apps
    # that depend on it (compliance), which later tests need back.
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    try:
        old = MigrationExecutor(connection).loader.project_state([before]).apps
        OldProvider = old.get_model("routing", "Provider")
        OldProvider.objects.create(
            name="keyed", kind="openai", api_key_encrypted=crypto.encrypt("sk-bare-0123456789")
        )
        OldProvider.objects.create(name="keyless", kind="openai", api_key_encrypted="")
        foreign = Fernet(Fernet.generate_key()).encrypt(b"sk-under-another-key").decode()
        OldProvider.objects.create(name="foreign", kind="openai", api_key_encrypted=foreign)

        executor = MigrationExecutor(connection)
        executor.migrate([after])
        NewProvider = executor.loader.project_state([after]).apps.get_model("routing", "Provider")
        keyed = NewProvider.objects.get(name="keyed").credentials_encrypted
        assert crypto.decrypt(keyed) == '{"api_key":"sk-bare-0123456789"}'
        assert NewProvider.objects.get(name="keyless").credentials_encrypted == ""
        # Unreadable with today's keys: left exactly as it was, for when the key is back.
        assert NewProvider.objects.get(name="foreign").credentials_encrypted == foreign

        # Back: the bare key again.
        executor = MigrationExecutor(connection)
        executor.migrate([before])
        OldProvider = executor.loader.project_state([before]).apps.get_model("routing", "Provider")
        assert crypto.decrypt(OldProvider.objects.get(name="keyed").api_key_encrypted) == (
            "sk-bare-0123456789"
        )
    finally:
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_migrating_back_refuses_a_credential_the_former_format_cannot_hold():
    target = ("routing", "0005_deployment_capabilities")
    provider = ProviderFactory(kind="azure_openai", api_base="https://res.openai.azure.com")
    provider.set_credentials(AZURE)
    provider.save()
    executor = MigrationExecutor(connection)
    # Every app's latest, not only routing's: migrating routing back also unapplies the apps
    # that depend on it (compliance), which later tests need back.
    latest = executor.loader.graph.leaf_nodes()
    try:
        with pytest.raises(RuntimeError, match=f"provider {provider.name} has credential parts"):
            executor.migrate([target])
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert Provider.objects.get(pk=provider.pk).get_credentials() == AZURE
