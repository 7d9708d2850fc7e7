"""The provider admin and structured credentials: a write-only field per secret part, the API
version shown like any setting, which parts are stored (never their values), the kind's shape
enforced, and a clear checkbox."""

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from routing.models import Provider

from .factories import ProviderFactory

AZURE_KEY = "azure-admin-key-0123456789abcdef"
AZURE = {"api_key": AZURE_KEY, "api_version": "2024-10-21"}


def _change_url(provider: Provider) -> str:
    return reverse("admin:routing_provider_change", args=[provider.pk])


def _form(provider: Provider | None = None, **extra) -> dict:
    data = {
        "name": provider.name if provider else "new-azure",
        "kind": provider.kind if provider else "azure_openai",
        "api_base": provider.api_base if provider else "https://res.openai.azure.com",
        "region": "eu",
        "first_byte_timeout_s": 300,
        "idle_timeout_s": 300,
        "attempt_timeout_s": 600,
        "enabled": "on",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


@pytest.fixture
def azure(db):
    provider = ProviderFactory(
        name="azure", kind="azure_openai", api_base="https://res.openai.azure.com"
    )
    provider.set_credentials(AZURE)
    provider.save()
    return provider


def test_change_form_shows_the_api_version_and_which_parts_are_stored_but_no_key(
    admin_client, azure
):
    page = admin_client.get(_change_url(azure)).content.decode()
    assert AZURE_KEY not in page
    assert azure.credentials_encrypted not in page
    assert 'name="api_key"' in page  # write-only, empty
    assert 'name="api_version" value="2024-10-21"' in page
    assert "api_key, api_version" in page  # parts stored
    assert "azure_openai: api_key, api_version" in page  # what each kind takes


def test_blank_key_keeps_it_while_the_api_version_changes(admin_client, azure):
    response = admin_client.post(_change_url(azure), _form(azure, api_version="2025-01-01"))
    assert response.status_code == 302
    azure.refresh_from_db()
    assert azure.get_credentials() == {"api_key": AZURE_KEY, "api_version": "2025-01-01"}


def test_saving_unchanged_keeps_the_very_same_token(admin_client, azure):
    token = azure.credentials_encrypted
    response = admin_client.post(_change_url(azure), _form(azure, api_version="2024-10-21"))
    assert response.status_code == 302
    azure.refresh_from_db()
    assert azure.credentials_encrypted == token


def test_a_new_azure_provider_needs_its_api_version(admin_client, db):
    url = reverse("admin:routing_provider_add")
    response = admin_client.post(url, _form(api_key=AZURE_KEY))
    assert response.status_code == 200
    assert "This kind of provider needs it." in response.content.decode()
    assert AZURE_KEY not in response.content.decode()
    assert not Provider.objects.exists()

    response = admin_client.post(url, _form(api_key=AZURE_KEY, api_version="2024-10-21"))
    assert response.status_code == 302
    assert Provider.objects.get().get_credentials() == AZURE


def test_a_part_the_kind_does_not_take_is_refused(admin_client, db):
    provider = ProviderFactory(name="openai", kind="openai")
    response = admin_client.post(_change_url(provider), _form(provider, api_version="2024-10-21"))
    assert response.status_code == 200
    assert "Not used by this kind of provider" in response.content.decode()


def test_switching_kind_keeps_the_key_and_drops_what_the_new_kind_does_not_take(
    admin_client, azure
):
    # The API version is still in the (prefilled) form: shown, not typed.
    data = _form(azure, kind="openai", api_base="", api_version="2024-10-21")
    response = admin_client.post(_change_url(azure), data)
    assert response.status_code == 302
    azure.refresh_from_db()
    assert azure.get_credentials() == {"api_key": AZURE_KEY}


def test_clear_removes_every_part(admin_client, azure):
    data = _form(azure, kind="openai", api_base="", clear_credentials="on")
    response = admin_client.post(_change_url(azure), data)
    assert response.status_code == 302
    azure.refresh_from_db()
    assert not azure.has_credentials


def test_an_undecryptable_credential_is_left_alone_until_a_new_one_is_typed(admin_client, db):
    provider = ProviderFactory(name="foreign", kind="openai")
    token = Fernet(Fernet.generate_key()).encrypt(b'{"api_key":"sk-elsewhere"}').decode()
    Provider.objects.filter(pk=provider.pk).update(credentials_encrypted=token)

    page = admin_client.get(_change_url(provider)).content.decode()
    assert "cannot be decrypted" in page
    response = admin_client.post(_change_url(provider), _form(provider, region="us"))
    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.region, provider.credentials_encrypted) == ("us", token)

    response = admin_client.post(_change_url(provider), _form(provider, api_key="sk-new-one-42"))
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.get_credentials() == {"api_key": "sk-new-one-42"}


def test_changelist_says_only_whether_a_credential_is_set(admin_client, azure):
    page = admin_client.get(reverse("admin:routing_provider_changelist")).content.decode()
    assert "Credential set" in page
    assert AZURE_KEY not in page and "2024-10-21" not in page
