"""Server-sent events passed through chunk by chunk, with usage taken from the final chunk."""

import asyncio

import httpx
import orjson
from django.conf import settings

from infra import http
from routing.providers import ProviderError, UpstreamStream
from routing.providers.usage import estimate_usage, usage_from_openai

from .context import RequestContext, log
from .sse import EventBuffer, EventTooLarge


def _usage_chunk(event: bytearray) -> dict | None:
    # Cheap tests first: most chunks carry no usage and are never parsed. With include_usage
    # (always injected), OpenAI sends `"usage":null` on every chunk but the last.
    if b'"usage"' not in event or b'"usage":null' in event:
        return None
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                data = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return None
            return data if isinstance(data, dict) and data.get("usage") else None
    return None


def _error_event(message: str, code: str) -> bytes:
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def relay(
    ctx: RequestContext, upstream: UpstreamStream, payload: dict, client_wants_usage: bool
):
    """Yield upstream events as they arrive; settle exactly once however the stream ends."""
    events = EventBuffer(settings.GATEWAY_UPSTREAM_MAX_EVENT_BYTES)
    streamed_bytes = 0
    reported = False
    finished = False  # the client has been sent the terminating `data: [DONE]`
    try:
        try:
            async for chunk in upstream.chunks:
                out = []
                for event in events.feed(chunk):
                    data = _usage_chunk(event)
                    if data is not None:
                        usage = usage_from_openai(data["usage"])
                        if usage is not None:
                            ctx.usage, reported = usage, True
                        # Injected on the client's behalf: a client that did not ask for the
                        # usage-only chunk (no choices) may index choices[0], so it is dropped.
                        if not client_wants_usage and not data.get("choices"):
                            continue
                    out.append(event)
                if out:
                    if ctx.ttft_ms is None:
                        ctx.ttft_ms = ctx.elapsed_ms()
                    joined = b"".join(out)
                    streamed_bytes += len(joined)
                    finished = out[-1].startswith(b"data: [DONE]")
                    yield joined
                if events.too_large:
                    raise EventTooLarge(settings.GATEWAY_UPSTREAM_MAX_EVENT_BYTES)
            rest = events.rest()
            if rest.strip():
                yield rest
        except EventTooLarge as exc:
            ctx.fail(502, "upstream_response_too_large")
            log.warning("request %s: %s", ctx.request_id, exc)
            yield _error_event(str(exc), "upstream_response_too_large")
        except (httpx.TransportError, ProviderError) as exc:
            timed_out = isinstance(exc, httpx.TransportError) and http.is_timeout(exc)
            code = "upstream_timeout" if timed_out else "upstream_disconnected"
            ctx.fail(504 if timed_out else 502, code)
            log.warning("request %s: upstream stream broke: %s", ctx.request_id, code)
            yield _error_event("the upstream stream ended abnormally", code)
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away. Django cancels the response task (or closes this generator).
        # Clients such as the OpenAI SDK hang up as soon as they read [DONE]: that stream was
        # delivered in full and is not a disconnect.
        if not finished:
            ctx.fail(499, "client_disconnected")
        raise
    finally:
        if not reported:
            # Counting SSE bytes over-estimates the output (JSON framing); for money, erring
            # high is the safe side, and the row says it is an estimate.
            ctx.usage = estimate_usage(payload, streamed_bytes)
        try:
            await upstream.aclose()
        finally:
            # A client that hangs up right after its last chunk gets this task cancelled while
            # the usage event is being written; shielded, the write completes anyway.
            await asyncio.shield(ctx.settle())
