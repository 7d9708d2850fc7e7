"""Puts who is asking, from where, into the audit context for the people-facing paths.

Only /admin/, /portal/ and /api/ get it (source by prefix); everything else passes through
untouched. /v1 never gets here: gateway/asgi.py serves it without any middleware.
"""

import uuid

from infra.client_address import of_request

from .context import audit_context

SOURCES = (("/admin/", "admin"), ("/portal/", "portal"), ("/api/", "api"))
_MAX_REQUEST_ID = 64


def _source_of(path: str) -> str | None:
    for prefix, source in SOURCES:
        if path.startswith(prefix):
            return source
    return None


def _request_id(request) -> str:
    """The caller's X-Request-ID (a proxy's, to correlate) or a new one: rows of one request
    share it (a rotation writes several)."""
    given = request.headers.get("x-request-id", "")
    if given and given.isprintable():
        return given[:_MAX_REQUEST_ID]
    return uuid.uuid4().hex


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = _source_of(request.path_info)
        if source is None:
            return self.get_response(request)
        with audit_context(
            request=request,
            source=source,
            ip=of_request(request),
            request_id=_request_id(request),
        ):
            return self.get_response(request)
