"""The base of every API view: an audit context around the request, and a strict serializer.

The audit context (audit/context.py) is set once the caller is authenticated, so records
written by the services (and by the generic capture of saves) name the token's user too, not
only a session's; it is left in finalize_response, which DRF calls on every path out.
"""

import contextlib
import ipaddress

from rest_framework import serializers
from rest_framework.views import APIView

from audit.context import audit_context
from infra.client_address import of_request


class ApiView(APIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        stack = contextlib.ExitStack()
        stack.enter_context(audit_context(actor=request.user, source="api", ip=_ip(request)))
        self._audit_stack = stack

    def finalize_response(self, request, response, *args, **kwargs):
        stack = getattr(self, "_audit_stack", None)
        if stack is not None:
            self._audit_stack = None
            stack.close()
        return super().finalize_response(request, response, *args, **kwargs)


def _ip(request) -> str | None:
    """The client's address for the audit row; None when there is none to tell (a request
    made in process has no peer, and the row's column takes addresses only)."""
    address = of_request(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not declare (400), so a client that
    sends `team`, `owner` or `key_hash` learns it cannot set them rather than being ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({k: ["unknown field"] for k in unknown})
        return super().to_internal_value(data)
