"""Sending one request to a provider over HTTP: what every HTTP adapter shares.

Timeouts (connect, first byte, idle), bounded reads, Retry-After, transport failures and the
event-stream check live here once; an adapter supplies its URL, its headers and how its
provider's error statuses map to ProviderError (`StatusError`).
"""

import asyncio
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import orjson
from django.conf import settings

from infra import http
from routing.selectors import Route

from .base import ProviderError, UpstreamStream

# Only an error's message, param and code are ever used; a real one is a few hundred bytes.
ERROR_BODY_LIMIT = 64 * 1024

# (response, its bounded body, ms so far) -> the error to raise.
StatusError = Callable[[httpx.Response, bytes, float], ProviderError]


def retry_after(headers: httpx.Headers) -> dict[str, str]:
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


def rate_limited(response: httpx.Response, upstream_ms: float) -> ProviderError:
    # Retryable: another deployment may have capacity. The last one's answer is the client's,
    # Retry-After included.
    return ProviderError(
        "the upstream provider is rate limiting the gateway",
        retryable=True,
        kind="upstream_rate_limited",
        status=429,
        upstream_ms=upstream_ms,
        headers=retry_after(response.headers),
    )


def rejected(status: int, body: bytes, upstream_ms: float) -> ProviderError:
    """The caller's own mistake: relayed (redacted), never retried elsewhere."""
    return ProviderError(
        "upstream rejected the request",
        retryable=False,
        kind="client_error",
        status=status,
        body=body,
        upstream_ms=upstream_ms,
    )


def failed(status: int, upstream_ms: float, *, unavailable: bool = False) -> ProviderError:
    """Any other error status: 503 when the provider says it is unavailable, else 502."""
    if status in (401, 403):
        # Our credential, not the caller's: say so without echoing anything upstream sent.
        message = "the upstream provider rejected the gateway's credentials"
    else:
        message = f"the upstream provider returned HTTP {status}"
    return ProviderError(
        message,
        retryable=True,
        kind="upstream_unavailable" if unavailable else "upstream_error",
        status=503 if unavailable else 502,
        upstream_ms=upstream_ms,
        # Worth a retry of this deployment: a 5xx or overload (529), a request timeout. A
        # rejected credential, a missing deployment (404) or the like stays as it is.
        transient=status >= 500 or status == 408,
    )


def transport_error(route: Route, exc: httpx.TransportError, upstream_ms: float) -> ProviderError:
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
        transient=True,
    )


def timed_out(route: Route, which: str, seconds: float, started: float) -> ProviderError:
    return ProviderError.timeout(
        f"{route.provider_name} sent nothing for {seconds:g} s ({which})",
        upstream_ms=(time.perf_counter() - started) * 1000,
    )


EVENT_STREAM = "text/event-stream"


def is_event_stream(response: httpx.Response, expected: str = EVENT_STREAM) -> bool:
    content_type = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == expected


def not_json(route: Route) -> ProviderError:
    return ProviderError(f"{route.provider_name} returned a body that is not JSON", retryable=True)


async def send(
    route: Route,
    url: str,
    payload: dict,
    headers: dict[str, str],
    started: float,
    status_error: StatusError,
    content: bytes | None = None,
) -> httpx.Response:
    """Send the request; returns at the response headers, an error status raised. The body
    is the caller's to read (bounded) and to close. The caller bounds the wait. `content`,
    when given, is sent instead of the payload's JSON: the exact bytes a signature covers."""
    client = http.client()
    request = client.build_request(
        "POST",
        url,
        content=content if content is not None else orjson.dumps(payload),
        headers=headers,
        timeout=http.request_timeout(route.connect_timeout_s),
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.TransportError as exc:
        raise transport_error(route, exc, (time.perf_counter() - started) * 1000) from exc
    if response.status_code >= 400:
        try:
            body = await http.read_body(
                response, limit=ERROR_BODY_LIMIT, idle_s=route.idle_timeout_s
            )
        except (http.ResponseTooLarge, httpx.TransportError, TimeoutError):
            body = b""  # the status alone decides; the message is then ours
        finally:
            await response.aclose()
        raise status_error(response, body, (time.perf_counter() - started) * 1000)
    return response


async def complete(
    route: Route,
    url: str,
    payload: dict,
    headers: dict[str, str],
    status_error: StatusError,
    content: bytes | None = None,
    response_headers: dict[str, str] | None = None,
) -> tuple[bytes, float]:
    """A whole (non-streamed) answer's body, and the ms it took. `response_headers`, when
    given, receives the answer's headers (lower-case names): some providers count there."""
    started = time.perf_counter()
    try:
        # Not streamed: the response starts only once the whole answer is ready.
        async with asyncio.timeout(route.first_byte_timeout_s):
            response = await send(route, url, payload, headers, started, status_error, content)
    except TimeoutError as exc:
        raise timed_out(route, "first byte", route.first_byte_timeout_s, started) from exc
    if response_headers is not None:
        response_headers.update((k.lower(), v) for k, v in response.headers.items())
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
        raise timed_out(route, "idle", route.idle_timeout_s, started) from exc
    except httpx.TransportError as exc:
        raise transport_error(route, exc, (time.perf_counter() - started) * 1000) from exc
    finally:
        await response.aclose()
    return body, (time.perf_counter() - started) * 1000


async def open_stream(
    route: Route,
    url: str,
    payload: dict,
    headers: dict[str, str],
    status_error: StatusError,
    content: bytes | None = None,
    stream_type: str = EVENT_STREAM,
) -> UpstreamStream:
    """Returns once the upstream sent the stream's first chunk (see ProviderAdapter).
    `stream_type` is the content type the stream must have (Bedrock's is AWS event-stream)."""
    started = time.perf_counter()
    response: httpx.Response | None = None
    try:
        # Until the first chunk, not just the headers: some servers send headers at once and
        # then think. Failing here still lets the proxy fall back.
        async with asyncio.timeout(route.first_byte_timeout_s):
            response = await send(route, url, payload, headers, started, status_error, content)
            if not is_event_stream(response, stream_type):
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
            raise timed_out(route, which, seconds, started) from exc
        if isinstance(exc, httpx.TransportError):
            ms = (time.perf_counter() - started) * 1000
            raise transport_error(route, exc, ms) from exc
        raise
    opened = response
    return UpstreamStream(
        chunks=chunks,
        upstream_ms=(time.perf_counter() - started) * 1000,
        closers=[opened.aclose],
        first=first,
        abort=lambda: http.abort(opened),
    )


async def probe_get(
    route: Route, url: str, headers: dict[str, str], status_error: StatusError
) -> float:
    """A health check's GET (a models endpoint): raises the ProviderError a request would,
    returns the ms it took. The body is read (bounded) only to finish the exchange."""
    started = time.perf_counter()
    client = http.client()
    try:
        async with asyncio.timeout(route.first_byte_timeout_s):
            response = await client.get(
                url, headers=headers, timeout=http.request_timeout(route.connect_timeout_s)
            )
    except TimeoutError as exc:
        raise timed_out(route, "first byte", route.first_byte_timeout_s, started) from exc
    except httpx.TransportError as exc:
        raise transport_error(route, exc, (time.perf_counter() - started) * 1000) from exc
    ms = (time.perf_counter() - started) * 1000
    if response.status_code >= 400:
        raise status_error(response, response.content[:ERROR_BODY_LIMIT], ms)
    return ms
