"""Request bodies: size, JSON, shape, and fields that try to pick the upstream."""

import orjson
from django.http import HttpRequest
from django.http.request import RawPostDataException

from .errors import BadRequest

# Outbound URLs and credentials come only from admin configuration. A client that names them
# (LiteLLM-style per-request overrides) is refused, at any depth of the body.
FORBIDDEN_FIELDS = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "azure_endpoint", "custom_llm_provider"}
)


def read_body(request: HttpRequest) -> bytes:
    """The body the handler already read, bounded in size and time (handler.read_body)."""
    try:
        return request.body
    except RawPostDataException as exc:  # pragma: no cover - body consumed elsewhere
        raise BadRequest("request body could not be read") from exc


def _find_forbidden(value, path: str) -> str | None:
    # Iterative walk: a hostile body nested 100k levels deep must not hit the recursion limit.
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key in FORBIDDEN_FIELDS:
                    return f"{where}.{key}" if where else key
                if isinstance(child, dict | list):
                    stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                if isinstance(child, dict | list):
                    stack.append((child, f"{where}[{index}]"))
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
    forbidden = _find_forbidden(data, "")
    if forbidden is not None:
        raise BadRequest(
            f"'{forbidden}' is not accepted: the gateway chooses the upstream and its credentials",
            param=forbidden,
            code="forbidden_field",
        )
    return data


def require_model(data: dict) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", param="model")
    return model


def require_stream_flag(data: dict) -> bool:
    stream = data.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    return stream
