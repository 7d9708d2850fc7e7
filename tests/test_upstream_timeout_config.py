"""Timeouts in configuration: the four fields, per-deployment overrides, the routing table's
effective values, and the deprecated `timeout_s` (YAML and the database migration)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from gateway.config import ConfigError, config_load
from routing.models import Deployment, Provider
from routing.selectors import routing_table_build

PROVIDER = "providers:\n  - {{name: p, kind: mock{extra}}}\n"
MODEL = "models:\n  - {{name: m, deployments: [{{provider: p, model: x{extra}}}]}}\n"


def _load(provider: str = "", deployment: str = "") -> None:
    config_load(text=PROVIDER.format(extra=provider) + MODEL.format(extra=deployment))


def test_provider_timeouts_have_documented_defaults(db):
    _load()
    provider = Provider.objects.get(name="p")
    assert provider.connect_timeout_s is None  # GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S
    assert (provider.first_byte_timeout_s, provider.idle_timeout_s) == (300.0, 300.0)
    assert provider.attempt_timeout_s == 600.0


def test_deprecated_timeout_s_sets_the_first_byte_and_idle_timeouts(db):
    _load(provider=", timeout_s: 0.5")
    provider = Provider.objects.get(name="p")
    assert (provider.first_byte_timeout_s, provider.idle_timeout_s) == (0.5, 0.5)
    assert provider.attempt_timeout_s == 600.0


def test_timeout_s_together_with_its_replacements_is_an_error(db):
    with pytest.raises(ConfigError, match="timeout_s: deprecated; it means first_byte"):
        _load(provider=", timeout_s: 5, idle_timeout_s: 10")


@pytest.mark.parametrize("value", [".inf", "0", "-1", "soon"])
def test_a_timeout_must_be_a_positive_finite_number(db, value):
    with pytest.raises(ConfigError, match=r"providers\[0\] \(p\)\.attempt_timeout_s: "):
        _load(provider=f", attempt_timeout_s: {value}")


def test_a_bad_deprecated_timeout_is_reported_under_the_name_the_file_used(db):
    expected = r"providers\[0\] \(p\)\.timeout_s: must be a finite number"
    with pytest.raises(ConfigError, match=expected):
        _load(provider=", timeout_s: 0")


@override_settings(GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S=3.0)
def test_routes_carry_the_deployments_override_else_the_providers_value(db):
    _load(
        provider=", first_byte_timeout_s: 20, idle_timeout_s: 10, attempt_timeout_s: 100",
        deployment=", first_byte_timeout_s: 2, connect_timeout_s: 1",
    )

    [route] = routing_table_build().candidates("chat", "m")

    assert route.first_byte_timeout_s == 2  # the deployment's
    assert route.connect_timeout_s == 1  # the deployment's
    assert (route.idle_timeout_s, route.attempt_timeout_s) == (10, 100)  # the provider's


@override_settings(GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S=3.0)
def test_connect_timeout_defaults_to_the_process_setting(db):
    _load()
    [route] = routing_table_build().candidates("chat", "m")
    assert route.connect_timeout_s == 3.0


def test_reloading_unchanged_timeouts_changes_nothing(db):
    _load(provider=", timeout_s: 7", deployment=", attempt_timeout_s: 9")
    text = PROVIDER.format(extra=", timeout_s: 7") + MODEL.format(extra=", attempt_timeout_s: 9")
    report = config_load(text=text)
    assert (report.created, report.updated) == (0, 0)
    assert Deployment.objects.get().attempt_timeout_s == 9


@pytest.mark.django_db(transaction=True)
def test_migration_keeps_a_custom_timeout_s_as_first_byte_and_idle_timeouts():
    before, after = ("routing", "0001_initial"), ("routing", "0002_upstream_timeouts")
    executor = MigrationExecutor(connection)
    # Every app's latest, not only routing's: migrating routing back also unapplies the apps
    # that depend on it (compliance), which later tests need back.
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    try:
        old = MigrationExecutor(connection).loader.project_state([before]).apps
        OldProvider = old.get_model("routing", "Provider")
        OldProvider.objects.create(name="custom", kind="mock", timeout_s=30)
        OldProvider.objects.create(name="default", kind="mock", timeout_s=600)

        executor = MigrationExecutor(connection)
        executor.migrate([after])

        new = executor.loader.project_state([after]).apps
        NewProvider = new.get_model("routing", "Provider")
        custom = NewProvider.objects.get(name="custom")
        default = NewProvider.objects.get(name="default")
        assert (custom.first_byte_timeout_s, custom.idle_timeout_s) == (30, 30)
        assert (default.first_byte_timeout_s, default.idle_timeout_s) == (300, 300)
    finally:
        MigrationExecutor(connection).migrate(latest)
