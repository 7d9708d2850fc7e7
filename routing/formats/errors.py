"""What a translation refuses, and each format's error vocabulary and error shapes."""

import orjson


class Unsupported(Exception):
    """The client asked for something the target format cannot honour, and dropping it would
    change the answer the client relies on (n > 1, logprobs, a JSON mode the provider lacks...).
    The dialect answers 400 naming `param`, before any upstream call."""

    status = 400

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class Malformed(ValueError):
    """An upstream body or stream event this codec cannot read: the provider's fault (502)."""


# Anthropic's error types by HTTP status (docs.anthropic.com/en/api/errors). 4xx statuses it does
# not list are invalid_request_error, as the docs say; 5xx ones are api_error, except that the
# gateway's own "unavailable" (503) is what Anthropic calls overloaded (its 529).
ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
ANTHROPIC_TYPES = frozenset(ANTHROPIC_TYPE_BY_STATUS.values())

# And back: the status an Anthropic error type stands for, for an adapter reading an error body
# or an in-stream error event (which has no status of its own).
STATUS_BY_ANTHROPIC_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def anthropic_error_type(status: int) -> str:
    found = ANTHROPIC_TYPE_BY_STATUS.get(status)
    if found is not None:
        return found
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


# --- OpenAI's error shapes ------------------------------------------------------------------------


def _error(type_: str, message: str, param, code, request_id) -> bytes:
    error = {"message": message, "type": type_, "param": param, "code": code}
    if request_id is not None:
        error["request_id"] = request_id
    return orjson.dumps({"error": error})


def openai_error_body(
    status: int,
    type_: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """OpenAI's error shape; the status is the response's, not part of the body."""
    return _error(type_, message, param, code, request_id)


def openai_stream_error(
    status: int, type_: str, message: str, *, code: str | None = None, request_id: str | None = None
) -> bytes:
    """The in-stream error event: OpenAI's error object as one `data:` event."""
    return b"data: " + _error(type_, message, None, code, request_id) + b"\n\n"


# --- Anthropic's error shapes ---------------------------------------------------------------------


def _error_type(status: int, type_: str) -> str:
    return type_ if type_ in ANTHROPIC_TYPES else anthropic_error_type(status)


def anthropic_error_body(
    status: int,
    type_: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """Anthropic's error shape. `type_` is kept when it is one of Anthropic's types, else the
    status decides it; Anthropic's shape has no `param` or `code`, so they are not sent."""
    body: dict = {
        "type": "error",
        "error": {"type": _error_type(status, type_), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def anthropic_stream_error(
    status: int, type_: str, message: str, *, code: str | None = None, request_id: str | None = None
) -> bytes:
    """The in-stream `error` event (status 0: none known, the type decides alone)."""
    error = {"type": _error_type(status or 500, type_), "message": message}
    body: dict = {"type": "error", "error": error}
    if request_id is not None:
        body["request_id"] = request_id
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def refuse_choices_and_logprobs(
    req, *, logprobs_message: str = "this model does not return log probabilities"
) -> None:
    """Refusals shared by every format that returns one choice and no log probabilities:
    silently answering one choice, or none of the probabilities, would break the client."""
    if req.n is not None and req.n > 1:
        raise Unsupported("n", "this model returns one choice per request; n must be 1")
    if req.logprobs or req.top_logprobs:
        raise Unsupported("logprobs" if req.logprobs else "top_logprobs", logprobs_message)
