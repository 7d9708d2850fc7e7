"""Gemini's error shapes (error_body, stream_error, for Gemini as a client's dialect) and the
reading of its error bodies (error_from_body, retry_delay, for the adapter).

An error is `{"error": {"code": <HTTP status>, "message": ..., "status": <google.rpc.Code
name>, "details": [...]}}` (ai.google.dev/gemini-api/docs/troubleshooting); `details` may hold
a google.rpc.ErrorInfo (its `reason` says what failed) and a google.rpc.RetryInfo.
"""

import orjson

# google.rpc.Code names by HTTP status (ai.google.dev/gemini-api/docs/troubleshooting).
STATUS_NAME_BY_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
HTTP_BY_STATUS_NAME = {name: status for status, name in STATUS_NAME_BY_HTTP.items()}
HTTP_BY_STATUS_NAME["FAILED_PRECONDITION"] = 400
HTTP_BY_STATUS_NAME["OUT_OF_RANGE"] = 400


def status_name(status: int) -> str:
    found = STATUS_NAME_BY_HTTP.get(status)
    if found is not None:
        return found
    return "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL"


def _error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": status_name(status)}}


def error_body(
    status: int,
    type_: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """Gemini's error shape; the status decides the status name (the shape has no param)."""
    return orjson.dumps(_error(status, message))


def stream_error(
    status: int, type_: str, message: str, *, code: str | None = None, request_id: str | None = None
) -> bytes:
    return b"data: " + orjson.dumps(_error(status or 500, message)) + b"\r\n\r\n"


# ErrorInfo reasons that say the credential is bad, whatever the status: Gemini answers an
# invalid API key with 400 INVALID_ARGUMENT, which must not reach the client as its own 400.
_AUTH_REASONS = frozenset(("API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"))


def _error_object(body: bytes | bytearray | dict | list | None) -> dict | None:
    data = body
    if isinstance(body, bytes | bytearray):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    if isinstance(data, list) and data:
        data = data[0]  # the stream endpoint without alt=sse answers errors in a JSON array
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: dict, kind: str) -> list[dict]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    suffix = "google.rpc." + kind
    return [d for d in details if isinstance(d, dict) and str(d.get("@type")).endswith(suffix)]


def error_from_body(status: int, body: bytes | dict | list | None) -> tuple[str, str]:
    """(status name, message) of an upstream Gemini error response, for the adapter's mapping
    (HTTP_BY_STATUS_NAME gives the status a name stands for). A bad API key reads as
    UNAUTHENTICATED even though Gemini sends it as 400 INVALID_ARGUMENT. A body that is not
    Gemini's shape (a proxy's HTML page) gives the HTTP status's own name."""
    error = _error_object(body)
    fallback = f"the provider answered HTTP {status}"
    if error is None:
        return status_name(status), fallback
    name = error.get("status")
    if not isinstance(name, str) or not name:
        name = status_name(status)
    if any(info.get("reason") in _AUTH_REASONS for info in _details(error, "ErrorInfo")):
        name = "UNAUTHENTICATED"
    return name, str(error.get("message") or fallback)


def retry_delay(body: bytes | dict | list | None) -> float | None:
    """Seconds to wait from a 429's google.rpc.RetryInfo (`"retryDelay": "37s"`): Gemini sends
    no Retry-After header, this is where it says when to retry. None when absent."""
    error = _error_object(body)
    for info in _details(error, "RetryInfo") if error else ():
        delay = info.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None
