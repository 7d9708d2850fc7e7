"""Streaming measurements with a small asyncio client over raw sockets.

wrk reads a response in one piece, so it cannot tell when a stream's first event arrived; this
client can. It is the same client for every target, so its own cost cancels in the difference
(gateway minus direct, LiteLLM minus direct), as wrk's does.

- `sequential`: one keep-alive connection, one streamed request at a time (c=1): time to the
  response head (TTFB), to the first `data:` event, and to the end of the stream.
- `hold_open`: many streams open at once from a slow upstream, to weigh what an open stream
  costs a server in memory; a callback measures while all are open, then every one is closed.
"""

import asyncio
import time
from collections import Counter
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # the client works on the default loop too, only slower
    uvloop = None


def _request_bytes(url: str, key: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader, headers: dict, started: float, marks: dict) -> None:
    """Read a whole body (chunked or sized), noting when the first `data:` event arrived."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if "first_event" not in marks and b"data:" in chunk:
                marks["first_event"] = time.perf_counter() - started
            if size == 0:
                return
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if b"data:" in body:
            marks["first_event"] = time.perf_counter() - started


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000

    return {"p50_ms": at(50), "p90_ms": at(90), "p99_ms": at(99), "mean_ms": sum(ordered) /
            len(ordered) * 1000, "n": len(ordered)}  # fmt: skip


async def _sequential(url: str, key: str, body: bytes, secs: float) -> dict:
    host, port, request = _request_bytes(url, key, body)
    ttfb, first, total, statuses = [], [], [], Counter()
    reader = writer = None
    deadline = time.monotonic() + secs
    try:
        while time.monotonic() < deadline:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            status, headers = await _read_head(reader)
            head_at = time.perf_counter() - started
            marks: dict = {}
            await _read_body(reader, headers, started, marks)
            statuses[str(status)] += 1
            if status == 200 and "first_event" in marks:
                ttfb.append(head_at)
                first.append(marks["first_event"])
                total.append(time.perf_counter() - started)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()
    return {
        "ttfb": _percentiles(ttfb),
        "first_event": _percentiles(first),
        "total": _percentiles(total),
        "statuses": dict(statuses),
    }


async def _hold_open(url, key, body, count, open_timeout_s, measure, parallel_connects=64):
    host, port, request = _request_bytes(url, key, body)
    statuses, failures = Counter(), Counter()
    samples: dict[str, str] = {}  # the start of the first body per error status
    writers: list = []
    gate = asyncio.Semaphore(parallel_connects)  # no SYN flood: the accept backlog is finite

    async def open_one() -> bool:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                failures[type(exc).__name__] += 1
                return False
            writers.append(writer)
            writer.write(request)
        try:
            status, _ = await _read_head(reader)
            statuses[str(status)] += 1
            if status == 200:
                await reader.readuntil(b"data:")  # the stream is flowing
                return True
            if str(status) not in samples:
                text = await asyncio.wait_for(reader.read(160), 2)
                samples[str(status)] = text.decode(errors="replace")
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            failures[type(exc).__name__] += 1
        return False

    started = time.monotonic()
    tasks = [asyncio.ensure_future(open_one()) for _ in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=open_timeout_s)
    open_s = time.monotonic() - started
    for task in pending:
        task.cancel()
    failures["still opening at the timeout"] += len(pending)
    streaming = sum(1 for t in done if not t.exception() and t.result())
    measured = measure()  # every stream that opened is still open: nothing has been closed
    for writer in writers:
        writer.close()
    await asyncio.sleep(0.5)  # let the closes reach the server before the next measurement
    return {
        "requested": count,
        "streaming": streaming,
        "seconds_to_open": open_s,
        "statuses": dict(statuses),
        "failures": {k: v for k, v in failures.items() if v},
        "error_samples": samples,
        "measured": measured,
    }


def _run(coro):
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def sequential(url: str, key: str, body: bytes, secs: float) -> dict:
    return _run(_sequential(url, key, body, secs))


def hold_open(url: str, key: str, body: bytes, count: int, open_timeout_s: float, measure):
    """Open `count` streams, call measure() once all have their first event (or the timeout
    passed), close them all; returns how many streamed and what measure() returned."""
    return _run(_hold_open(url, key, body, count, open_timeout_s, measure))
