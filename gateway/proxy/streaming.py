"""Server-sent events passed through chunk by chunk, with usage taken from the final chunk."""

import asyncio

import httpx
import orjson

from infra import http
from routing.providers import ProviderError, UpstreamStream
from routing.providers.usage import estimate_usage, usage_from_openai

from .context import RequestContext, log

_SEPARATORS = (b"\r\n\r\n", b"\n\n")


def _next_event(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Split off the first complete SSE event (terminator included), if there is one."""
    best, size = -1, 0
    for sep in _SEPARATORS:
        index = buffer.find(sep)
        if index != -1 and (best == -1 or index < best):
            best, size = index, len(sep)
    if best == -1:
        return None
    end = best + size
    return buffer[:end], buffer[end:]


def _usage_chunk(event: bytes) -> dict | None:
    # Cheap test first: most chunks carry no usage and are never parsed.
    if b'"usage"' not in event:
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
    buffer = b""
    streamed_bytes = 0
    reported = False
    finished = False  # the client has been sent the terminating `data: [DONE]`
    try:
        try:
            async for chunk in upstream.chunks:
                buffer += chunk
                out = []
                while (split := _next_event(buffer)) is not None:
                    event, buffer = split
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
            if buffer.strip():
                yield buffer
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
