"""Request bodies: JSON, and fields that try to pick the upstream (their shape: validation.py);
the headers the gateway forwards."""

import orjson
from django.conf import settings
from django.http import HttpRequest
from django.http.request import RawPostDataException

from .errors import BadRequest

# Outbound URLs and credentials come only from admin configuration. A client that names them
# (LiteLLM-style per-request overrides) is refused where an upstream or a proxy in front of one
# would read them: at the top level, and anywhere inside `metadata` and `extra_body`. Not inside
# messages, tool schemas or response formats: there they are the caller's data (a tool may well
# take an `api_key` argument), and no upstream reads them as settings.
FORBIDDEN_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "organization",
        "azure_endpoint",
        "azure_deployment",
        "azure_ad_token",
        "custom_llm_provider",
        "extra_headers",
    }
)
# Families of per-request credentials: aws_access_key_id, aws_secret_access_key, aws_region_name,
# vertex_project, vertex_credentials, ...
FORBIDDEN_PREFIXES = ("aws_", "vertex_")
_CONTAINERS = ("metadata", "extra_body")


def _forbidden(key: str) -> bool:
    return key in FORBIDDEN_FIELDS or key.startswith(FORBIDDEN_PREFIXES)


def read_body(request: HttpRequest) -> bytes:
    """The body the handler already read, bounded in size and time (handler.read_body)."""
    try:
        return request.body
    except RawPostDataException as exc:  # pragma: no cover - body consumed elsewhere
        raise BadRequest("request body could not be read") from exc


def _find_forbidden_within(value, path: str) -> str | None:
    # Iterative walk: a hostile body nested 100k levels deep must not hit the recursion limit.
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if _forbidden(key):
                    return f"{where}.{key}"
                if isinstance(child, dict | list):
                    stack.append((child, f"{where}.{key}"))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                if isinstance(child, dict | list):
                    stack.append((child, f"{where}[{index}]"))
    return None


def find_forbidden(data: dict) -> str | None:
    """The path of the first field that tries to choose the upstream, or None."""
    for key in data:
        if _forbidden(key):
            return key
    for container in _CONTAINERS:
        value = data.get(container)
        if isinstance(value, dict | list):
            found = _find_forbidden_within(value, container)
            if found is not None:
                return found
    return None


def parse_json_object(body: bytes) -> dict:
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    forbidden = find_forbidden(data)
    if forbidden is not None:
        raise BadRequest(
            f"'{forbidden}' is not accepted: the gateway chooses the upstream and its credentials",
            param=forbidden,
            code="forbidden_field",
        )
    return data


def check_forwarded_headers(request: HttpRequest) -> None:
    """The allowlisted headers the upstream will receive must be ASCII.

    HTTP lets a client send any byte above 0x7F in a header value (Django decodes them as
    latin-1), but the upstream client encodes header values as ASCII: forwarding one would fail
    deep inside the call. Refused here instead, as the client's error.
    """
    for name in settings.GATEWAY_FORWARD_HEADERS:
        value = request.headers.get(name)
        if value is not None and not value.isascii():
            raise BadRequest(
                f"header '{name}' contains non-ASCII characters; it cannot be forwarded",
                code="invalid_header",
            )
