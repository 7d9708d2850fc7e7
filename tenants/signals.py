"""Any save or delete of a key, its team or its organization (admin edit, service, shell)
invalidates the cached snapshots it affects. `QuerySet.update()` sends no signal; the
querysets in tenants/models.py take care of it."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from . import keycache
from .models import ApiKey, Organization, Team


@receiver([post_save, post_delete], sender=ApiKey)
def _api_key_changed(sender, instance: ApiKey, **kwargs) -> None:
    if kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return
    keycache.invalidate_on_commit([instance.key_hash], using=kwargs.get("using"))


@receiver(post_save, sender=Team)
def _team_changed(sender, instance: Team, created: bool, **kwargs) -> None:
    if created:
        return
    keycache.invalidate_on_commit(
        ApiKey.objects.filter(team=instance).values_list("key_hash", flat=True),
        using=kwargs.get("using"),
    )


@receiver(post_save, sender=Organization)
def _organization_changed(sender, instance: Organization, created: bool, **kwargs) -> None:
    if created:
        return
    keycache.invalidate_on_commit(
        ApiKey.objects.filter(team__organization=instance).values_list("key_hash", flat=True),
        using=kwargs.get("using"),
    )


# Sent inside api_key_rotate's transaction, once the new key exists: apps above tenants copy
# what they hang on the old key (the policies app: its Policy) onto the new one.
api_key_rotated = Signal()  # kwargs: old, new
