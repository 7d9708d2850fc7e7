"""Saving or deleting what the compliance table holds drops this process's copy (on commit);
other processes pick the change up within GATEWAY_ROUTING_CACHE_TTL_S."""

from django.db.models.signals import post_delete, post_save

from routing.models import Provider

from .models import DataProcessingAgreement, RequirementSet
from .snapshot import invalidate_on_commit

# The table also names providers (the usage row's compliance basis).
for sender in (DataProcessingAgreement, RequirementSet, Provider):
    post_save.connect(
        invalidate_on_commit, sender=sender, dispatch_uid=f"compliance-{sender.__name__}"
    )
    post_delete.connect(
        invalidate_on_commit, sender=sender, dispatch_uid=f"compliance-del-{sender.__name__}"
    )
