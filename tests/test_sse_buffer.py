"""The SSE splitter: events come out whole and in order however the bytes were cut."""

import itertools

import pytest

from gateway.proxy.sse import EventBuffer

EVENTS = [
    b'data: {"a":1}\n\n',
    b'data: {"b":2}\r\n\r\n',
    b"event: x\ndata: y\n\n",
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _feed_all(chunks: list[bytes], limit: int = 1024) -> tuple[list[bytes], EventBuffer]:
    buffer = EventBuffer(limit)
    out = []
    for chunk in chunks:
        out.extend(bytes(e) for e in buffer.feed(chunk))
    return out, buffer


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_events_come_out_whole_wherever_the_stream_is_cut(cut):
    out, buffer = _feed_all(_split(STREAM, [cut]))
    assert out == EVENTS
    assert buffer.rest() == b""


def test_one_byte_at_a_time_gives_the_same_events():
    out, _ = _feed_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert out == EVENTS


def test_an_unterminated_tail_is_kept_for_the_end():
    out, buffer = _feed_all([b"data: 1\n\ndata: partial"])
    assert out == [b"data: 1\n\n"]
    assert buffer.rest() == b"data: partial"


def test_an_event_over_the_limit_stops_after_the_events_before_it():
    big = b"data: " + b"x" * 100 + b"\n\n"
    out, buffer = _feed_all([b"data: 1\n\n" + big + b"data: 2\n\n"], limit=50)
    assert out == [b"data: 1\n\n"]
    assert buffer.too_large


def test_an_unterminated_line_over_the_limit_is_too_large_before_it_ends():
    buffer = EventBuffer(50)
    for _ in range(10):
        assert buffer.feed(b"x" * 10) == []
        if buffer.too_large:
            break
    assert buffer.too_large


def test_a_long_event_in_many_small_chunks_is_still_one_event():
    event = b"data: " + b"y" * 5000 + b"\n\n"
    out, buffer = _feed_all(_split(event, list(range(7, len(event), 7))), limit=10_000)
    assert out == [event]
    assert not buffer.too_large
