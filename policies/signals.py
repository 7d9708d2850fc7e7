"""Saving or deleting what the policy table holds drops this process's copy (on commit); other
processes pick the change up within GATEWAY_POLICY_CACHE_TTL_S."""

from django.db.models.signals import post_delete, post_save

from tenants.models import Organization, Project

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
