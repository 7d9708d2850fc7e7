"""What a translation refuses, and the error vocabulary the codecs share."""


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
