"""Saving or deleting what the policy table holds drops this process's copy (on commit); other
processes pick the change up within GATEWAY_POLICY_CACHE_TTL_S."""

from django.db.models.signals import post_delete, post_save

from tenants.models import ApiKey, Organization, Project
from tenants.signals import api_key_rotated

from .models import ModelLimit, Policy
from .snapshot import invalidate_on_commit

# The table also holds organizations' slugs and timezones and projects' slugs.
for sender in (Policy, ModelLimit, Organization, Project):
    post_save.connect(
        invalidate_on_commit, sender=sender, dispatch_uid=f"policies-{sender.__name__}"
    )
    post_delete.connect(
        invalidate_on_commit, sender=sender, dispatch_uid=f"policies-del-{sender.__name__}"
    )


def copy_key_policy(sender, old, new, **kwargs) -> None:
    """A rotated key keeps its limits: the old key's Policy, copied onto the new key (the old
    one keeps its own until it stops working)."""
    policy = Policy.objects.filter(api_key=old).first()
    if policy is None:
        return
    policy.pk = None
    policy._state.adding = True
    policy.api_key = new
    policy.save()


api_key_rotated.connect(copy_key_policy, sender=ApiKey, dispatch_uid="policies-key-rotated")
