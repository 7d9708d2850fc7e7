"""Migrations stay safe while old and new code run side by side (docs/operations.md, "Upgrades").

During a rolling upgrade the new release's migrations run while the old release still serves.
An operation that removes or renames what the old code reads, or makes a column it does not
write required, breaks the old code until it is gone. Such a step belongs to a later release
(expand, then contract); one that cannot wait is listed in ALLOWED with the reason it is safe.
"""

from pathlib import Path

from django.db import migrations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.db.models import NOT_PROVIDED

ROOT = Path(__file__).resolve().parent.parent

# Before the first release every migration was applied with the gateway stopped (no old code
# ran beside them), so these were safe then and are listed once, here, with what they did.
_BEFORE_FIRST_RELEASE = "before the first release: applied with no older release running"
# (app, migration, operation as _describe() prints it) -> why it is safe.
ALLOWED: dict[tuple[str, str, str], str] = {
    (
        "tenants",
        "0002_organization_is_active",
        "AddField organization.is_active NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "tenants",
        "0003_organization_timezone",
        "AddField organization.timezone NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "tenants",
        "0004_organization_allowed_tag_keys",
        "AddField organization.allowed_tag_keys NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0003_usage_reserved_tokens",
        "AddField usagerecord.reserved_tokens NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0004_usage_fallbacks",
        "AddField usagerecord.fallbacks NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0005_usage_tags",
        "AddField usagerecord.tags NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0006_usage_content_daily_rollups",
        "AddField usagerecord.ingested_at NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0006_usage_content_daily_rollups",
        "AddField usagerecord.redactions NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "billing",
        "0007_usage_compliance_basis",
        "AddField usagerecord.compliance_basis NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0002_upstream_timeouts",
        "AddField provider.attempt_timeout_s NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0002_upstream_timeouts",
        "AddField provider.first_byte_timeout_s NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0002_upstream_timeouts",
        "AddField provider.idle_timeout_s NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    ("routing", "0002_upstream_timeouts", "RemoveField provider.timeout_s"): _BEFORE_FIRST_RELEASE
    + "; replaced by the three timeouts added beside it",
    (
        "routing",
        "0003_provider_allow_insecure_http",
        "AddField provider.allow_insecure_http NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0005_deployment_capabilities",
        "AddField deployment.supports_json_mode NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0005_deployment_capabilities",
        "AddField deployment.supports_streaming NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0005_deployment_capabilities",
        "AddField deployment.supports_tools NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0005_deployment_capabilities",
        "AddField deployment.supports_vision NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0006_provider_credentials",
        "RenameField provider.api_key_encrypted -> credentials_encrypted",
    ): _BEFORE_FIRST_RELEASE + "; the data moved with it (RunPython in the same migration)",
    (
        "routing",
        "0010_model_groups_and_rules",
        "AddField deployment.priority NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
    (
        "routing",
        "0010_model_groups_and_rules",
        "AddField deployment.weight NOT NULL without db_default",
    ): _BEFORE_FIRST_RELEASE,
}


def _field_required(field) -> bool:
    """A column the old code, which does not know it, cannot insert a row without."""
    if field.many_to_many or field.null:
        return False
    # db_default puts the default in the table itself; Django's `default` is applied by the
    # new code only, and the column's DEFAULT is dropped after the migration adds it.
    return field.db_default is NOT_PROVIDED


def _describe(op, app_label: str, state: ProjectState) -> str | None:
    """What is unsafe about the operation, or None."""
    if isinstance(op, migrations.RemoveField):
        return f"RemoveField {op.model_name}.{op.name}"
    if isinstance(op, migrations.DeleteModel):
        return f"DeleteModel {op.name}"
    if isinstance(op, migrations.RenameField):
        return f"RenameField {op.model_name}.{op.old_name} -> {op.new_name}"
    if isinstance(op, migrations.RenameModel):
        return f"RenameModel {op.old_name} -> {op.new_name}"
    if isinstance(op, migrations.AddField) and _field_required(op.field):
        return f"AddField {op.model_name}.{op.name} NOT NULL without db_default"
    if isinstance(op, migrations.AlterField):
        before = state.models[app_label, op.model_name_lower].fields.get(op.name)
        if before is not None and before.null and _field_required(op.field):
            return f"AlterField {op.model_name}.{op.name} to NOT NULL without db_default"
        if (
            before is not None
            and not before.many_to_many
            and before.db_type is not None
            and type(before) is not type(op.field)
        ):
            return (
                f"AlterField {op.model_name}.{op.name} type "
                f"{type(before).__name__} -> {type(op.field).__name__}"
            )
    return None


def _ours(migration) -> bool:
    """A migration of the project's own apps: under the checkout, and not in an installed
    package (a checkout's .venv is under the checkout too)."""
    module = __import__(migration.__module__, fromlist=["_"])
    path = Path(module.__file__).resolve()
    return path.is_relative_to(ROOT) and "site-packages" not in path.parts


def unsafe_operations() -> list[tuple[str, str, str]]:
    """Every unsafe operation in the project's own migrations, in the order they apply."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan = []
    for leaf in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(leaf):
            if node not in plan:
                plan.append(node)
    state = ProjectState(real_apps=loader.unmigrated_apps)
    found = []
    for node in plan:
        migration = loader.graph.nodes[node]
        ours = _ours(migration)
        for op in migration.operations:
            if ours:
                problem = _describe(op, migration.app_label, state)
                if problem:
                    found.append((migration.app_label, migration.name, problem))
            op.state_forwards(migration.app_label, state)
    return found


def test_no_migration_breaks_the_release_before_it_without_an_exemption():
    found = unsafe_operations()
    unlisted = [f for f in found if f not in ALLOWED]
    assert not unlisted, (
        "backward-incompatible migration operations (see docs/operations.md, Upgrades: split "
        "them into expand and contract releases, or add them to ALLOWED with a reason):\n"
        + "\n".join(f"  {app}/{name}: {problem}" for app, name, problem in unlisted)
    )


def test_every_exemption_still_names_a_real_operation():
    stale = set(ALLOWED) - set(unsafe_operations())
    assert not stale, f"ALLOWED lists operations no migration has: {sorted(stale)}"


def test_the_checker_flags_a_removed_column_and_a_new_required_one():
    from django.db import models

    state = ProjectState()
    state.add_model(
        migrations.state.ModelState(
            "demo",
            "Thing",
            [("id", models.AutoField(primary_key=True)), ("note", models.TextField(null=True))],
        )
    )
    assert _describe(migrations.RemoveField("thing", "note"), "demo", state)
    assert _describe(
        migrations.AddField("thing", "size", models.IntegerField(default=0)), "demo", state
    )
    assert not _describe(
        migrations.AddField("thing", "size", models.IntegerField(db_default=0)), "demo", state
    )
    assert not _describe(
        migrations.AddField("thing", "size", models.IntegerField(null=True)), "demo", state
    )
    assert _describe(
        migrations.AlterField("thing", "note", models.TextField(default="")), "demo", state
    )
