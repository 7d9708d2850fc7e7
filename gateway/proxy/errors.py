"""The /v1 error hierarchy, rendered in OpenAI's shape with the request id attached."""

import orjson
from django.http import HttpResponse


class GatewayError(Exception):
    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    @property
    def error_type(self) -> str:
        """What the usage log records: the code when there is one, else the type."""
        return self.code or self.type


class BadRequest(GatewayError):
    pass


class RequestTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


class RequestTimeout(GatewayError):
    status = 408
    code = "request_timeout"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class RateLimited(GatewayError):
    """A rate limit or a hard budget of the caller's own (not the provider's): 429."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ModelNotFound(GatewayError):
    status = 404
    code = "model_not_found"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "dependency_unavailable"

    @classmethod
    def of(cls, dependency: str) -> "ServiceUnavailable":
        """The one wording for an unreachable dependency ("database", "state store")."""
        return cls(f"the gateway's {dependency} is unavailable; retry shortly")


class Overloaded(GatewayError):
    """This web process is at its in-flight limit (GATEWAY_MAX_IN_FLIGHT): shed, not queued.

    Retry-After: 1, because the limit frees up as soon as any request in flight ends."""

    status = 503
    type = "service_unavailable"
    code = "overloaded"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the gateway is at capacity ({limit} requests in flight in this process); "
            "retry shortly",
            headers={"Retry-After": "1"},
        )


class UpstreamFailed(GatewayError):
    """The upstream failed (after fallbacks); status is 502, 503 or 504 depending on how."""

    type = "upstream_error"

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class InternalError(GatewayError):
    status = 500
    type = "internal_error"
    code = "internal_error"


def error_body(exc: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": exc.type,
                "param": exc.param,
                "code": exc.code,
                "request_id": request_id,
            }
        }
    )


def error_response(exc: GatewayError, request_id: str) -> HttpResponse:
    response = HttpResponse(
        error_body(exc, request_id), status=exc.status, content_type="application/json"
    )
    for name, value in exc.headers.items():
        response[name] = value
    response["x-request-id"] = request_id
    return response


class UpstreamRejected(GatewayError):
    """The upstream refused the request as malformed (its 400/413/422): the caller's to fix.

    Its message, param and code are relayed in our shape; nothing else from upstream is.
    """

    def __init__(self, status: int, body: bytes | None) -> None:
        error = {}
        try:
            parsed = orjson.loads(body or b"")
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                error = parsed["error"]
        except orjson.JSONDecodeError:
            pass
        message = error.get("message") if isinstance(error.get("message"), str) else None
        super().__init__(
            message or f"the upstream provider rejected the request (HTTP {status})",
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            code=error.get("code") if isinstance(error.get("code"), str) else "upstream_rejected",
        )
        self.status = status
