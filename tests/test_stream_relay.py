"""The stream relay driven directly, with an in-process upstream stream (as the mock adapter
produces): a slow client is not an idle upstream; the shutdown drain ends streams."""

import asyncio
import time

from gateway.proxy import streaming
from gateway.proxy.context import RequestContext
from gateway.proxy.streaming import relay
from routing.providers import UpstreamStream
from routing.selectors import Route

EVENTS = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b"data: [DONE]\n\n"]


def _ctx(idle_s: float) -> RequestContext:
    ctx = RequestContext("chat.completions")
    ctx.route = Route(
        deployment_id=1,
        model_name="m",
        upstream_model="u",
        mode="chat",
        provider_id=1,
        provider_name="p",
        provider_kind="mock",
        api_base="",
        idle_timeout_s=idle_s,
    )
    return ctx


async def _events():
    for event in EVENTS:
        yield event


async def test_a_slow_reader_is_not_an_idle_upstream():
    ctx = _ctx(idle_s=0.1)
    aborted = []
    upstream = UpstreamStream(chunks=_events(), upstream_ms=0.0, abort=lambda: aborted.append(True))
    stream = relay(ctx, upstream, {}, False, deadline=time.monotonic() + 30)

    out = [await anext(stream)]
    await asyncio.sleep(0.4)  # the relay waits on this reader, several idle periods long
    out += [chunk async for chunk in stream]

    assert b"".join(out) == b"".join(EVENTS)
    assert aborted == []
    assert (ctx.status, ctx.error_type) == (200, "")


async def _slow_events():
    for event in EVENTS:
        await asyncio.sleep(0.05)
        yield event


async def test_a_stream_open_when_the_drain_ends_streams_gets_an_error_event(monkeypatch):
    monkeypatch.setattr(streaming, "_closing", False)  # restored for the tests that follow
    ctx = _ctx(idle_s=30)
    upstream = UpstreamStream(chunks=_slow_events(), upstream_ms=0.0)
    stream = relay(ctx, upstream, {}, False, deadline=time.monotonic() + 30)

    first = await anext(stream)
    assert streaming.end_open_streams() == 1
    rest = [chunk async for chunk in stream]

    assert first == EVENTS[0]
    assert len(rest) == 1 and b'"code":"gateway_shutting_down"' in rest[0]
    assert (ctx.status, ctx.error_type) == (503, "gateway_shutting_down")
    assert streaming._open == set()


async def test_a_stream_that_starts_after_the_drain_ends_at_once(monkeypatch):
    monkeypatch.setattr(streaming, "_closing", False)
    streaming.end_open_streams()
    ctx = _ctx(idle_s=30)
    upstream = UpstreamStream(chunks=_slow_events(), upstream_ms=0.0, first=EVENTS[0])
    stream = relay(ctx, upstream, {}, False, deadline=time.monotonic() + 30)

    out = [chunk async for chunk in stream]

    # What had already been read is delivered; then the error, instead of the rest.
    assert out[0] == EVENTS[0]
    assert b'"code":"gateway_shutting_down"' in out[-1]
    assert b"[DONE]" not in b"".join(out)
