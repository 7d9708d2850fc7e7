"""Generic capture: every save and delete of the audited models becomes an audit row, however
it was made (admin form, service, command, shell), with the fields before and after.

Connected by label at start-up (audit/apps.py), so the audit app imports none of the apps it
watches and sits below them. A label whose app is not installed is skipped.
QuerySet.update() and raw SQL send no signals: writes that matter go through services, which
save instances.
"""

from django.apps import apps
from django.db.models.signals import post_delete, post_save, pre_save

from .context import current
from .masking import diff, snapshot
from .services import audit_record

AUDITED = (
    "tenants.Organization",
    "tenants.Team",
    "tenants.Project",
    "tenants.Membership",
    "tenants.ApiKey",
    "policies.Policy",
    "policies.ModelLimit",
    "routing.Provider",
    "routing.Deployment",
    "routing.ModelGroup",
    "routing.RoutingRule",
    "compliance.DataProcessingAgreement",
    "compliance.RequirementSet",
    "api.PersonalAccessToken",
)
# Moved by usage, not by people; a save that changes only these is not an event.
IGNORED_FIELDS = frozenset({"last_used_at"})


def _ignored(model) -> set[str]:
    """Fields an update's row leaves out: the usage-moved ones and auto_now timestamps (the
    row has its own time)."""
    stamps = {f.name for f in model._meta.concrete_fields if getattr(f, "auto_now", False)}
    return stamps | IGNORED_FIELDS


_BEFORE = "_audit_before"


def audited_models() -> list:
    found = []
    for label in AUDITED:
        try:
            found.append(apps.get_model(label))
        except LookupError:
            continue
    return found


def _pre_save(sender, instance, raw=False, **kwargs) -> None:
    if instance.pk is None or instance._state.adding:
        instance.__dict__.pop(_BEFORE, None)
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    instance.__dict__[_BEFORE] = snapshot(stored) if stored is not None else None


def _post_save(sender, instance, created, raw=False, **kwargs) -> None:
    before = None if created else instance.__dict__.pop(_BEFORE, None)
    after = snapshot(instance)
    changes = diff(before, after)
    ctx = current()
    if created or before is None:
        action = "create"
    else:
        for name in _ignored(sender) & set(changes):
            del changes[name]
        if not changes:
            return  # saved without a change that matters
        action = ctx.action or "update"
        changes.update(ctx.extra or {})
    audit_record(action=action, obj=instance, changes=changes)


def _post_delete(sender, instance, **kwargs) -> None:
    audit_record(action="delete", obj=instance, changes=diff(snapshot(instance), None))


def connect() -> None:
    for model in audited_models():
        label = model._meta.label_lower
        pre_save.connect(_pre_save, sender=model, dispatch_uid=f"audit-pre-{label}")
        post_save.connect(_post_save, sender=model, dispatch_uid=f"audit-post-{label}")
        post_delete.connect(_post_delete, sender=model, dispatch_uid=f"audit-del-{label}")
