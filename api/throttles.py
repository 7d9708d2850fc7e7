"""Request throttles, counted in the shared cache (Redis in production, so every web process
counts together): per token for token requests, per user for session requests, per client
address before anyone is known. Over the rate: 429 with Retry-After.

The rates are read from settings on each request (not frozen at import as DRF's own are), so
a change of GATEWAY_API_RATE applies without a new class.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from infra.client_address import of_request

from .models import PersonalAccessToken


class ApiThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str:
        return settings.GATEWAY_API_RATE

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, PersonalAccessToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{of_request(request)}"
        return f"api-throttle:{ident}"
