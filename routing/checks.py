"""System checks for the outbound settings: limits and deadlines that would misbehave."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_outbound_settings(app_configs, **kwargs):
    issues = []
    for name in ("GATEWAY_UPSTREAM_MAX_BODY_BYTES", "GATEWAY_UPSTREAM_MAX_EVENT_BYTES"):
        if getattr(settings, name) <= 0:
            issues.append(Error(f"{name} must be positive.", id="routing.E001"))
    if settings.GATEWAY_REQUEST_DEADLINE_S <= 0:
        issues.append(Error("GATEWAY_REQUEST_DEADLINE_S must be positive.", id="routing.E002"))
    if settings.GATEWAY_SHUTDOWN_TIMEOUT_S < 0:
        issues.append(Error("GATEWAY_SHUTDOWN_TIMEOUT_S must not be negative.", id="routing.E003"))
    if settings.GATEWAY_UPSTREAM_MAX_EVENT_BYTES > settings.GATEWAY_UPSTREAM_MAX_BODY_BYTES:
        issues.append(
            Warning(
                "GATEWAY_UPSTREAM_MAX_EVENT_BYTES is larger than GATEWAY_UPSTREAM_MAX_BODY_BYTES: "
                "one stream event may then be bigger than a whole non-streamed answer.",
                id="routing.W001",
            )
        )
    return issues
