"""Splitting an upstream byte stream into server-sent events, in linear time and bounded memory.

Chunks arrive cut anywhere (mid-line, mid-separator). The buffer is a bytearray that only grows
by the new chunk, and each separator search starts where the previous one stopped (less the
three bytes a separator cut in two may have left behind), so a long event dribbled in many
small chunks costs its length once, not once per chunk. An event, or an unterminated line,
longer than the limit stops the split: memory stays bounded whatever the upstream sends.
"""

_LF = b"\n\n"
_CRLF = b"\r\n\r\n"


class EventTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"an upstream event is larger than {limit} bytes")
        self.limit = limit


class EventBuffer:
    __slots__ = ("_buffer", "_limit", "too_large")

    def __init__(self, limit: int) -> None:
        self._buffer = bytearray()
        self._limit = limit
        # Set once an event over the limit was met: the events before it were returned, the
        # caller sends them and then ends the stream.
        self.too_large = False

    def feed(self, chunk: bytes) -> list[bytearray]:
        """The complete events (terminator included) that `chunk` completes, in order."""
        buffer = self._buffer
        scan = max(0, len(buffer) - 3)  # a separator may straddle the previous chunk's end
        buffer += chunk
        events: list[bytearray] = []
        start = 0
        lf = buffer.find(_LF, scan)
        crlf = buffer.find(_CRLF, scan)
        while lf != -1 or crlf != -1:
            end = lf + 2 if crlf == -1 or (lf != -1 and lf < crlf) else crlf + 4
            if end - start > self._limit:
                self.too_large = True
                break
            events.append(buffer[start:end])
            start = end
            # Each separator is searched for again only once passed: a stream that never uses
            # one kind costs one failed search per chunk, not one per event.
            if lf != -1 and lf < start:
                lf = buffer.find(_LF, start)
            if crlf != -1 and crlf < start:
                crlf = buffer.find(_CRLF, start)
        if start:
            del buffer[:start]
        if len(buffer) > self._limit:
            self.too_large = True
        return events

    def rest(self) -> bytes:
        """What is left after the last separator (an upstream that ended mid-event)."""
        return bytes(self._buffer)
