"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Mistral, Groq, Together…).

Both speak OpenAI's wire format, so bodies pass through untouched apart from the model id;
the only differences are the default base URL and whether a credential is required.
"""

import asyncio
import time
from email.utils import parsedate_to_datetime

import httpx
import orjson
from django.conf import settings

from infra import http
from routing.selectors import Route

from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream
from .usage import estimate_usage, usage_from_openai

# Upstream statuses that are the caller's own mistake: passed through, never retried elsewhere.
_CLIENT_ERRORS = {400, 413, 422}
# Only an error's message, param and code are ever used; a real one is a few hundred bytes.
_ERROR_BODY_LIMIT = 64 * 1024


def _retry_after(headers: httpx.Headers) -> dict[str, str]:
    """The upstream's Retry-After (seconds or an HTTP date) and retry-after-ms, when well
    formed: a client that waits as told does not hammer a provider that is limiting us."""
    found = {}
    seconds = headers.get("retry-after", "").strip()
    if seconds.isdigit() and len(seconds) <= 10:
        found["retry-after"] = seconds
    elif seconds and len(seconds) <= 64:
        try:
            parsedate_to_datetime(seconds)
            found["retry-after"] = seconds
        except (TypeError, ValueError):
            pass
    millis = headers.get("retry-after-ms", "").strip()
    try:
        if millis and len(millis) <= 16 and 0 <= float(millis) < float("inf"):
            found["retry-after-ms"] = millis
    except ValueError:
        pass
    return found


def _status_error(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    status = response.status_code
    if status in _CLIENT_ERRORS:
        return ProviderError(
            "upstream rejected the request",
            retryable=False,
            kind="client_error",
            status=status,
            body=body,
            upstream_ms=upstream_ms,
        )
    if status == 429:
        # Retryable: another deployment may have capacity. The last one's answer is the
        # client's, Retry-After included.
        return ProviderError(
            "the upstream provider is rate limiting the gateway",
            retryable=True,
            kind="upstream_rate_limited",
            status=429,
            upstream_ms=upstream_ms,
            headers=_retry_after(response.headers),
        )
    if status in (401, 403):
        # Our credential, not the caller's: say so without echoing anything upstream sent.
        message = "the upstream provider rejected the gateway's credentials"
    else:
        message = f"the upstream provider returned HTTP {status}"
    kind = "upstream_unavailable" if status == 503 else "upstream_error"
    return ProviderError(
        message,
        retryable=True,
        kind=kind,
        status=503 if status == 503 else 502,
        upstream_ms=upstream_ms,
    )


def _transport_error(route: Route, exc: httpx.TransportError, upstream_ms: float) -> ProviderError:
    if http.is_timeout(exc):
        return ProviderError.timeout(
            f"timed out calling {route.provider_name}", upstream_ms=upstream_ms
        )
    return ProviderError(
        f"could not reach {route.provider_name}",
        retryable=True,
        kind="upstream_unavailable",
        status=503,
        upstream_ms=upstream_ms,
    )


def _timed_out(route: Route, which: str, seconds: float, started: float) -> ProviderError:
    return ProviderError.timeout(
        f"{route.provider_name} sent nothing for {seconds:g} s ({which})",
        upstream_ms=(time.perf_counter() - started) * 1000,
    )


def _is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


class OpenAICompatibleAdapter(ProviderAdapter):
    default_api_base = ""

    def _url(self, route: Route, path: str) -> str:
        base = route.api_base or self.default_api_base
        if not base:
            raise ProviderError(f"provider {route.provider_name} has no api_base", retryable=True)
        return base.rstrip("/") + path

    def _auth_headers(self, route: Route) -> dict[str, str]:
        # No credential (a local server without auth): no header at all.
        return {"authorization": f"Bearer {route.api_key}"} if route.api_key else {}

    async def _send(
        self, route: Route, path: str, payload: dict, headers: dict[str, str], started: float
    ) -> httpx.Response:
        """Send the request; returns at the response headers, an error status raised. The body
        is the caller's to read (bounded) and to close. The caller bounds the wait."""
        out_headers = {**headers, "content-type": "application/json", **self._auth_headers(route)}
        client = http.client()
        request = client.build_request(
            "POST",
            self._url(route, path),
            content=orjson.dumps(payload),
            headers=out_headers,
            timeout=http.request_timeout(route.connect_timeout_s),
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _transport_error(route, exc, (time.perf_counter() - started) * 1000) from exc
        if response.status_code >= 400:
            try:
                body = await http.read_body(
                    response, limit=_ERROR_BODY_LIMIT, idle_s=route.idle_timeout_s
                )
            except (http.ResponseTooLarge, httpx.TransportError, TimeoutError):
                body = b""  # the status alone decides; the message is then ours
            finally:
                await response.aclose()
            raise _status_error(response, body, (time.perf_counter() - started) * 1000)
        return response

    async def _complete(
        self, route: Route, path: str, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            # Not streamed: the response starts only once the whole answer is ready.
            async with asyncio.timeout(route.first_byte_timeout_s):
                response = await self._send(route, path, payload, headers, started)
        except TimeoutError as exc:
            raise _timed_out(route, "first byte", route.first_byte_timeout_s, started) from exc
        try:
            body = await http.read_body(
                response,
                limit=settings.GATEWAY_UPSTREAM_MAX_BODY_BYTES,
                idle_s=route.idle_timeout_s,
            )
        except http.ResponseTooLarge as exc:
            # Not retried: the upstream did (and bills) the work, and another deployment would
            # most likely answer the same request just as large.
            raise ProviderError(
                f"{route.provider_name} returned a response larger than {exc.limit} bytes",
                retryable=False,
                kind="upstream_response_too_large",
                upstream_ms=(time.perf_counter() - started) * 1000,
            ) from exc
        except TimeoutError as exc:
            raise _timed_out(route, "idle", route.idle_timeout_s, started) from exc
        except httpx.TransportError as exc:
            raise _transport_error(route, exc, (time.perf_counter() - started) * 1000) from exc
        finally:
            await response.aclose()
        upstream_ms = (time.perf_counter() - started) * 1000
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
        started = time.perf_counter()
        response: httpx.Response | None = None
        try:
            # Until the first chunk, not just the headers: some servers send headers at once
            # and then think. Failing here still lets the proxy fall back.
            async with asyncio.timeout(route.first_byte_timeout_s):
                response = await self._send(route, "/chat/completions", payload, headers, started)
                if not _is_event_stream(response):
                    # An HTML error page from a proxy, a JSON body: relayed as a 200 stream, the
                    # client would get an empty or garbled answer.
                    content_type = response.headers.get("content-type") or "no content type"
                    raise ProviderError(
                        f"{route.provider_name} answered a streamed request with "
                        f"{content_type}, not an event stream",
                        retryable=True,
                        upstream_ms=(time.perf_counter() - started) * 1000,
                    )
                chunks = response.aiter_bytes()
                first = await anext(chunks, b"")
                if not first:
                    raise ProviderError(
                        f"{route.provider_name} ended the stream before sending an event",
                        retryable=True,
                        upstream_ms=(time.perf_counter() - started) * 1000,
                    )
        except BaseException as exc:
            if response is not None:
                await response.aclose()
            if isinstance(exc, TimeoutError):
                which, seconds = "first byte", route.first_byte_timeout_s
                raise _timed_out(route, which, seconds, started) from exc
            if isinstance(exc, httpx.TransportError):
                ms = (time.perf_counter() - started) * 1000
                raise _transport_error(route, exc, ms) from exc
            raise
        opened = response
        return UpstreamStream(
            chunks=chunks,
            upstream_ms=(time.perf_counter() - started) * 1000,
            closers=[opened.aclose],
            first=first,
            abort=lambda: http.abort(opened),
        )


class OpenAIAdapter(OpenAICompatibleAdapter):
    default_api_base = "https://api.openai.com/v1"
