"""Writes for routing that people make (the admin's actions; the portal and the API later).

Each saves the row (never a queryset update) so that the save signals see it: the audit trail
records the change, and the routing table picks it up within GATEWAY_ROUTING_CACHE_TTL_S.
"""

from audit.context import service_action

from .models import Deployment


def deployment_enabled_set(*, deployment: Deployment, enabled: bool, actor=None) -> Deployment:
    """Take a deployment in or out of routing; the audit trail records it as "enable" or
    "disable" by `actor`."""
    if deployment.enabled != enabled:
        deployment.enabled = enabled
        with service_action("enable" if enabled else "disable", actor=actor):
            deployment.save(update_fields=["enabled", "updated_at"])
    return deployment
