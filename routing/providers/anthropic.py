"""Anthropic's Messages API (docs.anthropic.com/en/api/messages).

The adapter speaks Anthropic's own format (`format = "anthropic"`): an OpenAI client's request
reaches it translated by the proxy (routing.formats), an Anthropic client's untouched. Sending,
timeouts and bounded reads are transport.py's; what is Anthropic's own is here: the URL, the
`x-api-key` and `anthropic-version` headers, the error statuses (529 overloaded) and usage,
which counts cache reads and writes apart from `input_tokens`.
"""

import httpx
import orjson

from routing.formats.anthropic import usage_to_ir
from routing.selectors import Route

from . import transport
from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream, Usage
from .usage import estimate_usage, usage_from_ir

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
# The caller's own mistakes (invalid_request_error, request_too_large): relayed, not retried.
_CLIENT_ERRORS = {400, 413, 422}
# 529 is Anthropic's "overloaded"; like a 503 another deployment may well have room.
_UNAVAILABLE = {503, 529}


def _status_error(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    status = response.status_code
    if status in _CLIENT_ERRORS:
        return transport.rejected(status, body, upstream_ms)
    if status == 429:
        return transport.rate_limited(response, upstream_ms)
    return transport.failed(status, upstream_ms, unavailable=status in _UNAVAILABLE)


def _api_key(route: Route) -> str:
    return route.api_key


def usage_of(message: dict) -> Usage | None:
    """A message's usage, cache reads and writes counted in the input (as OpenAI counts)."""
    usage = message.get("usage") if isinstance(message, dict) else None
    if not isinstance(usage, dict):
        return None
    try:
        return usage_from_ir(usage_to_ir(usage))
    except TypeError:  # a count that is not a number
        return None


class AnthropicAdapter(ProviderAdapter):
    format = "anthropic"

    def _url(self, route: Route, path: str) -> str:
        return (route.api_base or DEFAULT_API_BASE).rstrip("/") + path

    def _headers(self, route: Route, headers: dict[str, str]) -> dict[str, str]:
        return {
            **headers,
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            "x-api-key": _api_key(route),
        }

    async def _json(
        self, route: Route, path: str, payload: dict, headers: dict[str, str]
    ) -> tuple[bytes, dict, float]:
        url = self._url(route, path)
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

    async def chat(self, route: Route, payload: dict, headers: dict[str, str]) -> UpstreamResponse:
        body, data, upstream_ms = await self._json(route, "/v1/messages", payload, headers)
        usage = usage_of(data) or estimate_usage(payload, len(body))
        return UpstreamResponse(body=body, usage=usage, upstream_ms=upstream_ms)

    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        url = self._url(route, "/v1/messages")
        return await transport.open_stream(
            route, url, {**payload, "stream": True}, self._headers(route, headers), _status_error
        )

    async def probe(self, route: Route) -> None:
        # The models endpoint: free, and it checks the address and the credential.
        url = self._url(route, "/v1/models")
        headers = self._headers(route, {})
        await transport.probe_get(route, url, headers, _status_error)

    async def count_tokens(self, route: Route, payload: dict, headers: dict[str, str]) -> int:
        """The provider's own count of a request's input tokens."""
        _, data, _ = await self._json(route, "/v1/messages/count_tokens", payload, headers)
        count = data.get("input_tokens")
        if not isinstance(count, int):
            raise ProviderError(f"{route.provider_name} returned no token count", retryable=True)
        return count

    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        # The routing table never sends embeddings here (Anthropic has none); say so anyway.
        raise ProviderError(f"{route.provider_name} (Anthropic) has no embeddings", retryable=False)
