"""A configuration change reaches requests within GATEWAY_ROUTING_CACHE_TTL_S, as documented."""

import time

from django.conf import settings
from django.test import override_settings

from routing.models import Deployment

from .support import MESSAGES, assert_openai_error


def _post(gateway, model: str):
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES},
            headers=gateway.auth(),
        )


@override_settings(GATEWAY_ROUTING_CACHE_TTL_S=0.5)
def test_a_disabled_deployment_stops_taking_requests_within_the_ttl(gateway, upstream):
    assert _post(gateway, "chat-fast").status_code == 200

    Deployment.objects.filter(model_name="chat-fast").update(enabled=False)
    time.sleep(settings.GATEWAY_ROUTING_CACHE_TTL_S)

    assert_openai_error(_post(gateway, "chat-fast"), 404, "model_not_found")
