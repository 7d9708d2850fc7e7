"""Provider credentials at rest: encrypted in the database, decryptable only with the configured
keys, and re-encryptable under a new key (rotation)."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from routing import crypto
from routing.models import Provider
from routing.selectors import routing_table_build

from .factories import DeploymentFactory, ProviderFactory

PLAINTEXT = "sk-upstream-credential-0123456789abcdef"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _fresh_fernet():
    # routing.crypto builds its MultiFernet once per process; a test that changes the keys must
    # drop it, before and after, or it would keep encrypting with the previous keys.
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def _keys(*keys: str):
    """Switch GATEWAY_ENCRYPTION_KEYS (newest first), as an operator would by restarting."""
    crypto._fernet.cache_clear()
    return override_settings(GATEWAY_ENCRYPTION_KEYS=list(keys))


def _raw_column(provider: Provider) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials_encrypted FROM routing_provider WHERE id = %s", [provider.pk]
        )
        return cursor.fetchone()[0]


def test_database_column_never_holds_the_plaintext(db):
    provider = ProviderFactory()
    provider.set_api_key(PLAINTEXT)
    provider.save()
    raw = _raw_column(provider)
    assert raw
    assert PLAINTEXT not in raw
    assert "0123456789abcdef" not in raw


def test_credential_round_trips_through_the_database(db):
    provider = ProviderFactory()
    provider.set_api_key(PLAINTEXT)
    provider.save()
    assert Provider.objects.get(pk=provider.pk).get_api_key() == PLAINTEXT
    assert Provider.objects.get(pk=provider.pk).has_credentials


def test_same_credential_encrypts_differently_each_time():
    # Fernet tokens carry a random IV: equal credentials are not recognisable in the table.
    assert crypto.encrypt(PLAINTEXT) != crypto.encrypt(PLAINTEXT)


def test_empty_credential_is_stored_as_empty(db):
    provider = ProviderFactory()
    provider.set_api_key("")
    provider.save()
    assert _raw_column(provider) == ""
    assert Provider.objects.get(pk=provider.pk).get_api_key() == ""
    assert not provider.has_credentials


def test_rotation_keeps_old_tokens_readable_and_reencrypts_under_the_new_key(db):
    with _keys(OLD_KEY):
        provider = ProviderFactory()
        provider.set_api_key(PLAINTEXT)
        provider.save()
        old_token = _raw_column(provider)

    # Step 1 of a rotation: the new key goes first, the old one stays so old tokens still decrypt.
    with _keys(NEW_KEY, OLD_KEY):
        provider = Provider.objects.get(pk=provider.pk)
        assert provider.get_api_key() == PLAINTEXT
        # Step 2: re-encrypt every credential under the newest key.
        provider.credentials_encrypted = crypto.rotate(provider.credentials_encrypted)
        provider.save()
        new_token = _raw_column(provider)
    assert new_token != old_token
    assert PLAINTEXT not in new_token

    # Step 3: the old key can go; rotated credentials still decrypt.
    with _keys(NEW_KEY):
        assert Provider.objects.get(pk=provider.pk).get_api_key() == PLAINTEXT
    # ...and the old key alone can no longer read them.
    with _keys(OLD_KEY), pytest.raises(ValueError):
        Provider.objects.get(pk=provider.pk).get_api_key()


def test_new_credentials_are_encrypted_with_the_first_key(db):
    with _keys(NEW_KEY, OLD_KEY):
        token = crypto.encrypt(PLAINTEXT)
    with _keys(NEW_KEY):
        assert crypto.decrypt(token) == PLAINTEXT


def test_undecryptable_credential_error_does_not_echo_the_token(db):
    with _keys(OLD_KEY):
        token = crypto.encrypt(PLAINTEXT)
    with _keys(NEW_KEY), pytest.raises(ValueError) as excinfo:
        crypto.decrypt(token)
    assert token not in str(excinfo.value)
    assert PLAINTEXT not in str(excinfo.value)
    assert "GATEWAY_ENCRYPTION_KEYS" in str(excinfo.value)


def test_routing_table_holds_the_decrypted_credential_but_never_prints_it(db):
    provider = ProviderFactory(kind=Provider.Kind.OPENAI, name="openai")
    provider.set_api_key(PLAINTEXT)
    provider.save()
    DeploymentFactory(provider=provider, model_name="small")
    route = routing_table_build().candidates("chat", "small")[0]
    assert route.api_key == PLAINTEXT
    assert PLAINTEXT not in repr(route)
    assert PLAINTEXT not in str(route)
