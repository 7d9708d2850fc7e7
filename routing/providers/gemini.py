"""Google's Gemini API (ai.google.dev/api): generateContent, streamGenerateContent, embeddings.

The adapter speaks Gemini's own format (`format = "gemini"`): an OpenAI or Anthropic client's
request reaches it translated by the proxy (routing.formats). The model is part of the URL, not
of the body:

    POST {api_base}/v1beta/models/{model}:generateContent
    POST {api_base}/v1beta/models/{model}:streamGenerateContent?alt=sse
    POST {api_base}/v1beta/models/{model}:batchEmbedContents
    x-goog-api-key: <key>

The key goes in a header, never in the `key` query parameter the API also accepts: URLs end up
in access logs, proxies' logs and exception messages, headers do not.

Gemini's errors are named by google.rpc status (routing/formats/gemini_errors.py), and the name
decides, not only the HTTP status: an invalid API key arrives as 400 INVALID_ARGUMENT (reason
API_KEY_INVALID) and must be the gateway's credential failure (502, nothing echoed), not the
caller's bad request. A 429 says when to retry in google.rpc.RetryInfo, not in a Retry-After
header; the adapter turns it into one.
"""

import math
from urllib.parse import quote

import httpx
import orjson

from routing.formats import Malformed, Unsupported, gemini
from routing.selectors import Route

from . import transport
from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream, Usage
from .usage import estimate_tokens, usage_from_ir

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
API_VERSION_PATH = "/v1beta"
# The gateway's own credential is refused: never the caller's fault, never echoed.
_CREDENTIAL_FAILURES = frozenset(("UNAUTHENTICATED", "PERMISSION_DENIED"))
# The caller's own mistakes: relayed (redacted), not retried elsewhere.
_CLIENT_ERRORS = frozenset(("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"))


def _rate_limited(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    error = transport.rate_limited(response, upstream_ms)
    if "retry-after" not in error.headers:
        delay = gemini.retry_delay(body)
        if delay is not None:
            # Whole seconds (Retry-After takes no fractions), rounded up: waiting a little
            # longer than asked is harmless, retrying early is refused again.
            error.headers["retry-after"] = str(math.ceil(delay))
    return error


def _status_error(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    status = response.status_code
    name, _ = gemini.error_from_body(status, body)
    if name in _CREDENTIAL_FAILURES or status in (401, 403):
        return transport.failed(401, upstream_ms)  # 502, "rejected the gateway's credentials"
    if name == "RESOURCE_EXHAUSTED" or status == 429:
        return _rate_limited(response, body, upstream_ms)
    if name == "DEADLINE_EXCEEDED" or status == 504:
        return ProviderError.timeout(
            "the upstream provider's deadline expired before it answered", upstream_ms=upstream_ms
        )
    if name == "UNAVAILABLE" or status == 503:
        return transport.failed(503, upstream_ms, unavailable=True)
    if name == "NOT_FOUND" or status == 404:
        # The deployment's model id is wrong (or retired): the operator's to fix, not the
        # caller's; another deployment of the model may still answer.
        return ProviderError(
            "the upstream provider does not know the deployment's model (HTTP 404)",
            retryable=True,
            upstream_ms=upstream_ms,
        )
    if name in _CLIENT_ERRORS and status in (400, 413, 422):
        return transport.rejected(status, body, upstream_ms)
    return transport.failed(status, upstream_ms)


def usage_of(data: dict) -> Usage | None:
    """A GenerateContentResponse's usage (usageMetadata), None when it has none."""
    metadata = data.get("usageMetadata")
    if not isinstance(metadata, dict):
        return None
    try:
        return usage_from_ir(gemini.usage_to_ir(metadata))
    except TypeError:  # a count that is not a number
        return None


def _estimate(payload: dict, output_chars: int) -> Usage:
    """Rough usage of a generateContent request whose answer reported none."""
    texts = [
        part.get("text")
        for content in payload.get("contents") or ()
        if isinstance(content, dict)
        for part in content.get("parts") or ()
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    return Usage(
        input_tokens=estimate_tokens(texts),
        output_tokens=max(0, output_chars // 4),
        estimated=True,
    )


def _client_error(exc: Unsupported) -> ProviderError:
    """A parameter of an OpenAI embeddings request this provider cannot honour: the caller's
    400, in OpenAI's shape (the embeddings endpoint is OpenAI's and Azure's dialect)."""
    where = f"'{exc.param}': " if exc.param else ""
    error = {
        "message": f"unsupported parameter {where}{exc.message}",
        "param": exc.param,
        "code": "unsupported_parameter",
    }
    return ProviderError(
        "the request cannot be translated for this provider",
        retryable=False,
        kind="client_error",
        status=400,
        body=orjson.dumps({"error": error}),
    )


class GeminiAdapter(ProviderAdapter):
    format = "gemini"

    def _url(self, route: Route, method: str, query: str = "") -> str:
        base = (route.api_base or DEFAULT_API_BASE).rstrip("/")
        model = route.upstream_model.removeprefix("models/")
        # Quoted: the model id is the admin's free text and must stay one path segment.
        return f"{base}{API_VERSION_PATH}/models/{quote(model, safe='')}:{method}{query}"

    def _headers(self, route: Route, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "content-type": "application/json", "x-goog-api-key": route.api_key}

    async def _json(
        self, route: Route, method: str, payload: dict, headers: dict[str, str]
    ) -> tuple[bytes, dict, float]:
        url = self._url(route, method)
        body, upstream_ms = await transport.complete(
            route, url, payload, self._headers(route, headers), _status_error
        )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise transport.not_json(route) from exc
        if not isinstance(data, dict):
            raise transport.not_json(route)
        return body, data, upstream_ms

    async def probe(self, route: Route) -> None:
        # The model's own entry (models.get): free, and it checks the model id and the key.
        url = self._url(route, "").removesuffix(":")
        await transport.probe_get(route, url, self._headers(route, {}), _status_error)

    async def chat(self, route: Route, payload: dict, headers: dict[str, str]) -> UpstreamResponse:
        body, data, upstream_ms = await self._json(route, "generateContent", payload, headers)
        usage = usage_of(data) or _estimate(payload, len(body))
        return UpstreamResponse(body=body, usage=usage, upstream_ms=upstream_ms)

    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        # Every chunk carries usageMetadata, the last one the final counts: no option to ask.
        url = self._url(route, "streamGenerateContent", "?alt=sse")
        return await transport.open_stream(
            route, url, payload, self._headers(route, headers), _status_error
        )

    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        """An OpenAI embeddings request (the proxy passes embeddings untranslated) sent as
        batchEmbedContents, and the answer returned in OpenAI's shape. Gemini reports no token
        count for embeddings: usage is estimated, and the usage row says so."""
        try:
            body, dropped = gemini.embed_request_from_openai(payload, model=route.upstream_model)
        except Unsupported as exc:
            raise _client_error(exc) from exc
        _, data, upstream_ms = await self._json(route, "batchEmbedContents", body, headers)
        value = payload.get("input")
        inputs = [value] if isinstance(value, str) else list(value)
        try:
            answer, usage = gemini.embed_response_to_openai(
                data,
                model=route.upstream_model,
                inputs=inputs,
                encoding_format=payload.get("encoding_format"),
            )
        except Malformed as exc:
            raise ProviderError(
                f"{route.provider_name} returned an answer that is not a batchEmbedContents one",
                retryable=True,
                upstream_ms=upstream_ms,
            ) from exc
        return UpstreamResponse(
            body=orjson.dumps(answer),
            usage=Usage(input_tokens=usage.input_tokens, estimated=True),
            upstream_ms=upstream_ms,
            dropped=tuple(dropped),
        )
