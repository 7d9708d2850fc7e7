"""A provider's api_base is https, or plain http to this machine, or to another host only when
the provider says allow_insecure_http. Enforced by the model, so the admin and loadconfig agree;
the routing table leaves out rows written around it."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from gateway.config import ConfigError, config_load
from routing.models import Provider
from routing.selectors import routing_table_build

from .factories import DeploymentFactory, ProviderFactory

ALLOWED = [
    "https://api.example.com/v1",
    "http://127.0.0.1:8001/v1",
    "http://127.9.9.9/v1",
    "http://localhost:11434/v1",
    "http://LOCALHOST/v1",
    "http://[::1]:8000/v1",
]
REFUSED = [
    "http://api.example.com/v1",
    "http://10.0.0.5:8000/v1",
    "http://localhost.example.com/v1",
    "http://127.0.0.1.example.com/v1",
    "http://[::2]/v1",
]


def _provider(api_base: str, **kwargs) -> Provider:
    return Provider(name="p", kind=Provider.Kind.OPENAI_COMPATIBLE, api_base=api_base, **kwargs)


@pytest.mark.parametrize("api_base", ALLOWED)
def test_https_and_plain_http_to_this_machine_are_accepted(db, api_base):
    _provider(api_base).full_clean()


@pytest.mark.parametrize("api_base", REFUSED)
def test_plain_http_to_another_host_is_refused(db, api_base):
    with pytest.raises(ValidationError) as caught:
        _provider(api_base).full_clean()
    assert "api_base must use https://" in caught.value.message_dict["api_base"][0]


@pytest.mark.parametrize("api_base", REFUSED)
def test_allow_insecure_http_accepts_plain_http_to_another_host(db, api_base):
    _provider(api_base, allow_insecure_http=True).full_clean()


def test_other_schemes_are_refused_even_when_insecure_http_is_allowed(db):
    with pytest.raises(ValidationError) as caught:
        _provider("ftp://files.example.com/v1", allow_insecure_http=True).full_clean()
    assert "api_base" in caught.value.message_dict


def test_loadconfig_refuses_plain_http_to_another_host_naming_the_provider(db):
    text = "providers:\n  - {name: lan, kind: openai_compatible, api_base: 'http://10.0.0.5/v1'}\n"
    with pytest.raises(
        ConfigError, match=r"providers\[0\] \(lan\)\.api_base: api_base must use https://"
    ):
        config_load(text=text)
    assert not Provider.objects.exists()


def test_loadconfig_accepts_it_with_allow_insecure_http(db):
    config_load(
        text="providers:\n  - {name: lan, kind: openai_compatible, "
        "api_base: 'http://10.0.0.5/v1', allow_insecure_http: true}\n"
    )
    assert Provider.objects.get(name="lan").allow_insecure_http is True


def _form(provider: Provider, **extra) -> dict:
    data = {
        "name": provider.name,
        "kind": provider.kind,
        "api_base": provider.api_base,
        "region": provider.region,
        "first_byte_timeout_s": provider.first_byte_timeout_s,
        "idle_timeout_s": provider.idle_timeout_s,
        "attempt_timeout_s": provider.attempt_timeout_s,
        "enabled": "on",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


def test_admin_refuses_plain_http_to_another_host_unless_allowed(admin_client):
    provider = ProviderFactory(
        name="lan", kind=Provider.Kind.OPENAI_COMPATIBLE, api_base="https://llm.example.com/v1"
    )
    url = reverse("admin:routing_provider_change", args=[provider.pk])

    refused = admin_client.post(url, _form(provider, api_base="http://10.0.0.5/v1"))
    assert refused.status_code == 200
    assert "api_base must use https://" in refused.content.decode()
    provider.refresh_from_db()
    assert provider.api_base == "https://llm.example.com/v1"

    allowed = admin_client.post(
        url, _form(provider, api_base="http://10.0.0.5/v1", allow_insecure_http="on")
    )
    assert allowed.status_code == 302
    provider.refresh_from_db()
    assert (provider.api_base, provider.allow_insecure_http) == ("http://10.0.0.5/v1", True)


def test_routing_table_leaves_out_a_row_saved_around_the_check(db):
    good = ProviderFactory(name="good")
    DeploymentFactory(provider=good, model_name="fine")
    sneaky = ProviderFactory(name="sneaky", kind=Provider.Kind.OPENAI_COMPATIBLE)
    DeploymentFactory(provider=sneaky, model_name="plain")
    Provider.objects.filter(pk=sneaky.pk).update(api_base="http://203.0.113.7/v1")

    table = routing_table_build()

    assert table.model_names() == {"fine"}
    [skipped] = table.skipped
    assert skipped.provider == "sneaky"
    assert "https" in skipped.reason


@pytest.mark.django_db(transaction=True)
def test_migration_keeps_existing_plain_http_providers_working():
    before = ("routing", "0002_upstream_timeouts")
    after = ("routing", "0003_provider_allow_insecure_http")
    executor = MigrationExecutor(connection)
    # Every app's latest, not only routing's: migrating routing back also unapplies the apps
    # that depend on it (compliance), which later tests need back.
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    try:
        old = MigrationExecutor(connection).loader.project_state([before]).apps
        OldProvider = old.get_model("routing", "Provider")
        kind = "openai_compatible"
        OldProvider.objects.create(name="lan", kind=kind, api_base="http://10.0.0.5/v1")
        OldProvider.objects.create(name="local", kind=kind, api_base="http://127.0.0.1/v1")
        OldProvider.objects.create(name="tls", kind=kind, api_base="https://x.example/v1")

        executor = MigrationExecutor(connection)
        executor.migrate([after])

        NewProvider = executor.loader.project_state([after]).apps.get_model("routing", "Provider")
        allowed = dict(NewProvider.objects.values_list("name", "allow_insecure_http"))
        assert allowed == {"lan": True, "local": False, "tls": False}
    finally:
        MigrationExecutor(connection).migrate(latest)
