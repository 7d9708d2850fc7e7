"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Mistral, Groq, Together…).

Both speak OpenAI's wire format, so bodies pass through untouched apart from the model id;
the only differences are the default base URL and whether a credential is required.
"""

import httpx
import orjson

from routing.selectors import Route

from . import transport
from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream
from .usage import estimate_usage, usage_from_openai

# Upstream statuses that are the caller's own mistake: passed through, never retried elsewhere.
_CLIENT_ERRORS = {400, 413, 422}


def _status_error(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    status = response.status_code
    if status in _CLIENT_ERRORS:
        return transport.rejected(status, body, upstream_ms)
    if status == 429:
        return transport.rate_limited(response, upstream_ms)
    return transport.failed(status, upstream_ms, unavailable=status == 503)


def _api_key(route: Route) -> str:
    return route.api_key


class OpenAICompatibleAdapter(ProviderAdapter):
    format = "openai"
    max_tokens_field = "max_tokens"
    default_api_base = ""

    def _url(self, route: Route, path: str) -> str:
        base = route.api_base or self.default_api_base
        if not base:
            raise ProviderError(f"provider {route.provider_name} has no api_base", retryable=True)
        return base.rstrip("/") + path

    def _auth_headers(self, route: Route) -> dict[str, str]:
        # No credential (a local server without auth): no header at all.
        api_key = _api_key(route)
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _headers(self, route: Route, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "content-type": "application/json", **self._auth_headers(route)}

    async def _complete(
        self, route: Route, path: str, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        url = self._url(route, path)
        body, upstream_ms = await transport.complete(
            route, url, payload, self._headers(route, headers), _status_error
        )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise transport.not_json(route) from exc
        usage = usage_from_openai(data.get("usage") if isinstance(data, dict) else None)
        if usage is None:
            usage = estimate_usage(payload, len(body))
        return UpstreamResponse(body=body, usage=usage, upstream_ms=upstream_ms)

    async def chat(self, route: Route, payload: dict, headers: dict[str, str]) -> UpstreamResponse:
        return await self._complete(route, "/chat/completions", payload, headers)

    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        return await self._complete(route, "/embeddings", payload, headers)

    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        # Usage arrives in a final chunk only when asked for; the proxy strips that chunk again
        # if the client did not ask for it itself.
        payload = {
            **payload,
            "stream_options": {**(payload.get("stream_options") or {}), "include_usage": True},
        }
        url = self._url(route, "/chat/completions")
        return await transport.open_stream(
            route, url, payload, self._headers(route, headers), _status_error
        )

    async def probe(self, route: Route) -> None:
        # The models endpoint: free, and it checks the address and the credential.
        url = self._url(route, "/models")
        await transport.probe_get(route, url, self._auth_headers(route), _status_error)


class OpenAIAdapter(OpenAICompatibleAdapter):
    max_tokens_field = "max_completion_tokens"
    default_api_base = "https://api.openai.com/v1"
