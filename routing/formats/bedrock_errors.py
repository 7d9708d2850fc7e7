"""Bedrock Runtime's error answers, mapped to what the gateway tells the client.

A Bedrock error is `{"message": "..."}` with its type in the `x-amzn-errortype` header
(`ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/`); the Converse API
reference lists each type's status. The adapter turns the Fault into its ProviderError.
"""

import orjson
from msgspec import Struct

_RATE = "the upstream provider is rate limiting the gateway"


class Fault(Struct, frozen=True):
    """What an adapter makes of a Bedrock error answer: ProviderError's kind, the status the
    gateway answers with, a message safe to show the client, whether another deployment may
    succeed, and headers to relay (Retry-After)."""

    kind: str
    status: int
    message: str
    retryable: bool
    headers: dict = {}


# Bedrock Runtime's error types (x-amzn-errortype), per the Converse API reference:
# (kind, gateway status, retryable, message or None to relay Bedrock's own).
_FAULTS = {
    "ValidationException": ("client_error", 400, False, None),
    "ThrottlingException": (
        "upstream_rate_limited",
        429,
        True,
        _RATE := ("the upstream provider is rate limiting the gateway"),
    ),
    # The account's quota, not the client's request: another deployment may have room.
    "ServiceQuotaExceededException": ("upstream_rate_limited", 429, True, _RATE),
    # A model still loading (Bedrock's SDKs retry it): unavailable for now.
    "ModelNotReadyException": (
        "upstream_unavailable",
        503,
        True,
        "the upstream model is not ready yet",
    ),
    "ServiceUnavailableException": (
        "upstream_unavailable",
        503,
        True,
        "the upstream provider is unavailable",
    ),
    "ModelTimeoutException": ("upstream_timeout", 504, True, "the upstream model timed out"),
    "ModelErrorException": ("upstream_error", 502, True, "the upstream model failed"),
    "InternalServerException": ("upstream_error", 502, True, "the upstream provider failed"),
    "ResourceNotFoundException": (
        "upstream_error",
        502,
        True,
        "the upstream provider does not know the deployment's model",
    ),
}
_AUTH = (
    "upstream_error",
    502,
    True,
    "the upstream provider rejected the gateway's credentials",
)
for _name in (
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "NotAuthorized",
):
    _FAULTS[_name] = _AUTH
_BY_STATUS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_type(headers, body: bytes | dict | None) -> str | None:
    """The error's type: the x-amzn-errortype header (`ThrottlingException:http://...`), else
    the body's `__type` (`com.amazon...#ThrottlingException`) or `code`."""
    found = headers.get("x-amzn-errortype") if headers is not None else None
    if not found and body:
        data = body if isinstance(body, dict) else _json(body)
        found = data.get("__type") or data.get("code") if data else None
    if not isinstance(found, str) or not found:
        return None
    return found.split(":", 1)[0].rsplit("#", 1)[-1].strip() or None


def _json(body: bytes) -> dict | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def error_from_response(status: int, headers, body: bytes | dict | None) -> Fault:
    """Maps a Bedrock error answer (any status >= 400; `headers` any mapping with lower-case
    names, as httpx's) to a Fault. Only a ValidationException's own message is relayed (the
    client's request was wrong, and it says how); the others get the gateway's words, so
    nothing an upstream echoes (an access key id in an auth error) reaches the client."""
    name = error_type(headers, body) or _BY_STATUS.get(status)
    found = _FAULTS.get(name) if name else None
    if found is None:
        if 400 <= status < 500 and status not in (401, 403, 429):
            found = ("client_error", status, False, None)
        else:
            found = ("upstream_error", 502, True, f"the upstream provider returned HTTP {status}")
    kind, answer, retryable, message = found
    if message is None:
        data = body if isinstance(body, dict) else _json(body or b"")
        text = (data or {}).get("message") or (data or {}).get("Message")
        message = str(text) if text else f"the upstream provider refused the request ({name})"
    relay = {}
    if kind == "upstream_rate_limited":
        retry_after = headers.get("retry-after") if headers is not None else None
        if retry_after and retry_after.strip().isdigit() and len(retry_after) <= 10:
            relay["retry-after"] = retry_after.strip()
    return Fault(kind, answer, message, retryable, relay)
