"""Any change to a key or its team (admin edit, service, shell) invalidates the cached snapshot."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey, Team
from .services import api_keys_invalidate


@receiver([post_save, post_delete], sender=ApiKey)
def _api_key_changed(sender, instance: ApiKey, **kwargs) -> None:
    if kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return
    api_keys_invalidate(key_hashes=[instance.key_hash])


@receiver(post_save, sender=Team)
def _team_changed(sender, instance: Team, **kwargs) -> None:
    api_keys_invalidate(key_hashes=list(instance.api_keys.values_list("key_hash", flat=True)))
