"""Writes for routing that people make (the admin's actions; the portal and the API later).

Each saves the row (never a queryset update) so that the save signals see it: the audit trail
records the change, and the routing table picks it up within GATEWAY_ROUTING_CACHE_TTL_S.
"""

from .models import Deployment


def deployment_enabled_set(*, deployment: Deployment, enabled: bool, actor=None) -> Deployment:
    """Take a deployment in or out of routing. `actor` is who asked (recorded by the audit
    trail's context, not here)."""
    if deployment.enabled != enabled:
        deployment.enabled = enabled
        deployment.save(update_fields=["enabled", "updated_at"])
    return deployment
