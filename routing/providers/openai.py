"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Mistral, Groq, Together…).

Both speak OpenAI's wire format, so bodies pass through untouched apart from the model id;
the only differences are the default base URL and whether a credential is required.
"""

import time

import httpx
import orjson

from infra import http
from routing.selectors import Route

from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream
from .usage import estimate_usage, usage_from_openai

# Upstream statuses that are the caller's own mistake: passed through, never retried elsewhere.
_CLIENT_ERRORS = {400, 413, 422}


def _status_error(status: int, body: bytes, upstream_ms: float) -> ProviderError:
    if status in _CLIENT_ERRORS:
        return ProviderError(
            "upstream rejected the request",
            retryable=False,
            kind="client_error",
            status=status,
            body=body,
            upstream_ms=upstream_ms,
        )
    if status in (401, 403):
        # Our credential, not the caller's: say so without echoing anything upstream sent.
        message = "the upstream provider rejected the gateway's credentials"
    elif status == 429:
        message = "the upstream provider is rate limiting the gateway"
    else:
        message = f"the upstream provider returned HTTP {status}"
    kind = "upstream_unavailable" if status in (429, 503) else "upstream_error"
    return ProviderError(
        message,
        retryable=True,
        kind=kind,
        status=503 if status == 429 else 502,
        upstream_ms=upstream_ms,
    )


class OpenAICompatibleAdapter(ProviderAdapter):
    default_api_base = ""

    def _url(self, route: Route, path: str) -> str:
        base = route.api_base or self.default_api_base
        if not base:
            raise ProviderError(f"provider {route.provider_name} has no api_base", retryable=True)
        return base.rstrip("/") + path

    async def _send(
        self, route: Route, path: str, payload: dict, headers: dict[str, str], *, stream: bool
    ) -> tuple[httpx.Response, float]:
        out_headers = {**headers, "content-type": "application/json"}
        if route.api_key:
            out_headers["authorization"] = f"Bearer {route.api_key}"
        client = http.client()
        request = client.build_request(
            "POST",
            self._url(route, path),
            content=orjson.dumps(payload),
            headers=out_headers,
            timeout=http.timeout_for(route.timeout_s),
        )
        started = time.perf_counter()
        try:
            response = await client.send(request, stream=stream)
        except httpx.TransportError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if http.is_timeout(exc):
                raise ProviderError(
                    f"timed out calling {route.provider_name}",
                    retryable=True,
                    kind="upstream_timeout",
                    status=504,
                    upstream_ms=elapsed_ms,
                ) from exc
            raise ProviderError(
                f"could not reach {route.provider_name}",
                retryable=True,
                kind="upstream_unavailable",
                status=503,
                upstream_ms=elapsed_ms,
            ) from exc
        if response.status_code >= 400:
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            raise _status_error(response.status_code, body, (time.perf_counter() - started) * 1000)
        return response, (time.perf_counter() - started) * 1000

    async def _complete(
        self, route: Route, path: str, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        # Not streamed: httpx reads the whole body inside send(), so timeouts and broken
        # connections while reading surface as the same ProviderErrors as connect failures.
        response, upstream_ms = await self._send(route, path, payload, headers, stream=False)
        body = response.content
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProviderError(
                f"{route.provider_name} returned a body that is not JSON", retryable=True
            ) from exc
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
        response, upstream_ms = await self._send(
            route, "/chat/completions", payload, headers, stream=True
        )
        return UpstreamStream(
            chunks=response.aiter_bytes(), upstream_ms=upstream_ms, closers=[response.aclose]
        )


class OpenAIAdapter(OpenAICompatibleAdapter):
    default_api_base = "https://api.openai.com/v1"
