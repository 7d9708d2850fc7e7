"""Server-sent events passed through chunk by chunk, with usage taken from the final chunk (or
translated event by event when the upstream speaks another format than the client).

Once the first byte has gone to the client nothing is retried: whatever ends a stream early (an
upstream that breaks, goes quiet for the idle timeout or outlives the attempt's deadline, an
event over GATEWAY_UPSTREAM_MAX_EVENT_BYTES, the shutdown drain) ends it with one error event in
the client's dialect, and the stream is settled exactly once. The per-chunk work stays small:
events are split in linear time (sse.py), and the timeouts cost one timer per stream, not one
per chunk.
"""

import asyncio
import time

import httpx
import orjson
from django.conf import settings

from infra import http
from routing import health
from routing.formats import Malformed, StreamTranslator
from routing.formats.sse import read_event
from routing.providers import ProviderError, UpstreamStream
from routing.providers.usage import estimate_usage, usage_from_ir, usage_from_openai

from .context import RequestContext, log, settle_shielded
from .sse import EventBuffer, EventTooLarge


def _usage_chunk(event: bytearray) -> dict | None:
    # Cheap tests first: most chunks carry no usage and are never parsed. With include_usage
    # (always injected), OpenAI sends `"usage":null` on every chunk but the last.
    if b'"usage"' not in event or b'"usage":null' in event:
        return None
    _, payload = read_event(event)
    if payload is None:
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and data.get("usage") else None


_DONE = b"data: [DONE]"


def _translated(translator: StreamTranslator, events: list[bytearray]) -> list[bytes]:
    out = []
    for event in events:
        translated = translator.feed(event)
        if translated:
            out.append(translated)
    return out


class _Guard:
    """Ends one relayed stream early: when the upstream goes quiet for the route's idle
    timeout, or the attempt's deadline passes.

    Ending means aborting the upstream response: the relay's pending read fails at once and its
    ordinary error path sends the client an error event and settles. One timer per stream,
    re-armed only when it fires; per chunk the relay just notes the time.
    """

    __slots__ = ("code", "deadline", "idle_s", "message", "reading_since", "timer", "upstream")

    def __init__(self, upstream: UpstreamStream, idle_s: float, deadline: float) -> None:
        self.upstream = upstream
        self.idle_s = idle_s
        self.deadline = deadline
        # When the relay started waiting on the upstream; None while it waits on the client (a
        # slow reader is not an idle upstream).
        self.reading_since: float | None = time.monotonic()
        self.code: str | None = None
        self.message = ""
        self.timer: asyncio.TimerHandle | None = None
        self._arm(self.reading_since)

    def _arm(self, now: float) -> None:
        since = self.reading_since if self.reading_since is not None else now
        due = min(self.deadline, since + self.idle_s)
        self.timer = asyncio.get_running_loop().call_later(max(0.0, due - now), self._check)

    def _check(self) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            self.end("upstream_timeout", "the upstream stream exceeded its time limit")
        elif self.reading_since is not None and now - self.reading_since >= self.idle_s:
            self.end("upstream_timeout", f"the upstream sent nothing for {self.idle_s:g} s")
        else:
            self._arm(now)

    def end(self, code: str, message: str) -> None:
        if self.code is None:
            self.code, self.message = code, message
            self.close()
            self.upstream.abort()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class _Ended(Exception):
    """The guard ended the stream (its code says why)."""


# Streams being relayed by this process, for the shutdown drain (gateway/shutdown.py).
_open: set[_Guard] = set()
# Set by the drain: a stream that starts afterwards ends at once.
_closing = False
SHUTTING_DOWN = ("gateway_shutting_down", "the gateway is shutting down; retry the request")


def end_open_streams() -> int:
    """End every stream this process relays with an error event; each is then settled by its
    own error path. Streams that start later end at once. Returns how many were open."""
    global _closing
    _closing = True
    guards = list(_open)
    for guard in guards:
        guard.end(*SHUTTING_DOWN)
    return len(guards)


def error_event(message: str, code: str) -> bytes:
    """OpenAI's in-stream error (the OpenAI dialect's)."""
    kind = "service_unavailable" if code == SHUTTING_DOWN[0] else "upstream_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM_ERROR_STATUS = {
    "upstream_timeout": 504,
    "upstream_response_too_large": 502,
    "gateway_shutting_down": 503,
}


def _report_health(ctx: RequestContext, outcome: str, ttft_ms: float) -> None:
    """The stream's outcome to the one health hook, without holding the client's stream."""
    probe, ctx.health_probe = ctx.health_probe, False
    if outcome == health.RELEASE and not probe:
        return
    health.report_soon(
        ctx.route, outcome, ttft_ms=ttft_ms if outcome == health.OK else None, probe=probe
    )


async def relay(
    ctx: RequestContext,
    upstream: UpstreamStream,
    payload: dict,
    client_wants_usage: bool,
    *,
    deadline: float,
    translator: StreamTranslator | None = None,
    sniffer=None,
    end_with=error_event,
):
    """Yield upstream events as they arrive, until the attempt's `deadline` (monotonic) at the
    latest; settle exactly once however the stream ends.

    With a `translator` (an upstream of another wire format) each event is translated into the
    client's format and usage comes from it; without one, events pass through byte for byte,
    usage sniffed from OpenAI's final chunk, or by `sniffer` for another format (the dialect's
    usage_sniffer). `end_with` renders the error event that ends a stream cut short."""
    events = EventBuffer(settings.GATEWAY_UPSTREAM_MAX_EVENT_BYTES)
    guard = _Guard(upstream, ctx.route.idle_timeout_s, deadline)
    _open.add(guard)
    if _closing:
        guard.end(*SHUTTING_DOWN)
    # An upstream error event may echo the credential; relayed bytes never carry it.
    redact = ctx.route.redact if ctx.route.secret_forms else None
    # The privacy mode's copy of what the client receives (privacy.py); None in metadata mode.
    capture = ctx.capture
    streamed_bytes = 0
    reported = False
    # The deployment's health outcome (routing/health.py), reported once the stream ends.
    outcome = health.OK
    finished = False  # the client has been sent the terminating `data: [DONE]`
    monotonic = time.monotonic
    try:
        try:
            chunk = upstream.first  # read before the response was committed
            chunks = aiter(upstream.chunks)
            while True:
                if sniffer is not None:
                    out = events.feed(chunk)
                    for event in out:
                        sniffer.feed(event)
                    finished = sniffer.finished
                elif translator is None:
                    out = []
                    for event in events.feed(chunk):
                        data = _usage_chunk(event)
                        if data is not None:
                            usage = usage_from_openai(data["usage"])
                            if usage is not None:
                                ctx.usage, reported = usage, True
                            # Injected on the client's behalf: a client that did not ask for
                            # the usage-only chunk (no choices) may index choices[0], so it is
                            # dropped.
                            if not client_wants_usage and not data.get("choices"):
                                continue
                        out.append(event)
                else:
                    out = _translated(translator, events.feed(chunk))
                    finished = translator.finished
                if out:
                    if ctx.ttft_ms is None:
                        ctx.ttft_ms = ctx.elapsed_ms()
                    joined = b"".join(out)
                    if redact is not None:
                        joined = redact(joined)
                    streamed_bytes += len(joined)
                    if translator is None and sniffer is None:
                        finished = out[-1].startswith(_DONE)
                    guard.reading_since = None
                    if capture is not None:
                        capture.feed(joined)
                    yield joined
                if events.too_large:
                    raise EventTooLarge(settings.GATEWAY_UPSTREAM_MAX_EVENT_BYTES)
                guard.reading_since = monotonic()
                chunk = await anext(chunks, None)
                if guard.code is not None:  # ended meanwhile (an upstream without abort, too)
                    raise _Ended
                if chunk is None:
                    break
            rest = events.rest()
            if translator is not None:
                # An upstream that stopped without its end marker: the client's stream still
                # ends properly (its format's end, with usage if any came).
                rest = b"" if translator.finished else translator.close()
                finished = translator.finished
            if rest.strip():
                rest = redact(rest) if redact is not None else rest
                if capture is not None:
                    capture.feed(rest)
                yield rest
        except Malformed as exc:
            outcome = health.FAIL
            ctx.fail(502, "upstream_error")
            log.warning("request %s: %s", ctx.request_id, exc)
            yield end_with("the upstream sent an event the gateway cannot read", "upstream_error")
        except EventTooLarge as exc:
            outcome = health.FAIL
            ctx.fail(502, "upstream_response_too_large")
            log.warning("request %s: %s", ctx.request_id, exc)
            yield end_with(str(exc), "upstream_response_too_large")
        except (httpx.TransportError, ProviderError, _Ended) as exc:
            if guard.code is not None:  # ended on purpose: the guard says why
                code, message = guard.code, guard.message
            elif isinstance(exc, httpx.TransportError) and http.is_timeout(exc):
                code, message = "upstream_timeout", "the upstream stream timed out"
            else:
                code, message = "upstream_disconnected", "the upstream stream ended abnormally"
            # The gateway's own shutdown is not the deployment's failure.
            outcome = health.RELEASE if code == SHUTTING_DOWN[0] else health.FAIL
            ctx.fail(STREAM_ERROR_STATUS.get(code, 502), code)
            log.warning("request %s: upstream stream broke: %s", ctx.request_id, code)
            yield end_with(message, code)
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away. Django cancels the response task (or closes this generator).
        # Clients such as the OpenAI SDK hang up as soon as they read [DONE]: that stream was
        # delivered in full and is not a disconnect.
        if not finished:
            outcome = health.RELEASE  # the client's doing, not the deployment's
            ctx.fail(499, "client_disconnected")
        raise
    finally:
        guard.close()
        _open.discard(guard)
        watcher = translator or sniffer
        if watcher is not None:
            if watcher.usage is not None:
                ctx.usage, reported = usage_from_ir(watcher.usage), True
            if watcher.error is not None and ctx.status == 200:
                # The upstream ended the stream with an error event (relayed, translated).
                outcome = health.FAIL
                ctx.fail(502, "upstream_error")
        if not reported:
            # Counting SSE bytes over-estimates the output (JSON framing); for money, erring
            # high is the safe side, and the row says it is an estimate.
            ctx.usage = estimate_usage(payload, streamed_bytes)
        _report_health(ctx, outcome, upstream.upstream_ms)
        try:
            await upstream.aclose()
        finally:
            # A client that hangs up right after its last chunk gets this task cancelled while
            # the usage event is being written; shielded, the write completes anyway.
            await settle_shielded(ctx)
