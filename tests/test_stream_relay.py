"""The stream relay driven directly, with an in-process upstream stream (as the mock adapter
produces): what it does while the client, not the upstream, is slow."""

import asyncio
import time

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
