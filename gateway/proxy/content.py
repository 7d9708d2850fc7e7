"""The usage event's content (infra.usage_event.Content), built from a privacy.Capture when the
request settles: after the response has been sent, before the event exists.

    hashed    HMAC-SHA-256, keyed with GATEWAY_CONTENT_HMAC_KEY, of the canonical prompt
              (privacy.canonical_prompt) and of the response text (UTF-8); `hmac_key_id` is a
              short fingerprint of the key (an HMAC of a fixed label), never the key. Without
              a key nothing is stored: a plain hash of a prompt is guessable, so no weak
              substitute (a system check warns when a policy asks for it).
    redacted  the canonical prompt with every string in it scrubbed (infra.pii plus the
              policy's pii_patterns; inline images as `[DATA]`), and the scrubbed response
              text, with the placeholders counted by label.
    full      the canonical prompt and the response text as they were (an opt-in).

The response text is the assistant's text as the client received it: the text parts of a
complete answer, or the text deltas of a stream (tool calls and thinking are not kept).

If scrubbing fails (infra.pii.ScrubError), or anything else here does, the event carries no
content at all: the log names the request and the detector, never the text.
"""

import hashlib
import hmac
import logging

import orjson
from django.conf import settings

from infra import pii
from infra.usage_event import Content
from routing.formats import codec
from routing.formats.ir import Text, TextDelta

from .privacy import Capture, run_scrubber
from .sse import EventBuffer

log = logging.getLogger("gateway.proxy")

_KEY_ID_LABEL = b"gateway content key id"
_DATA = "[DATA]"
# Values that are vocabulary, not content: never scrubbed.
_PLAIN_KEYS = frozenset({"role", "type", "media_type", "detail", "cache_control", "id"})
_warned_no_key = False


def hmac_key() -> bytes:
    return settings.GATEWAY_CONTENT_HMAC_KEY.encode()


def key_id(key: bytes) -> str:
    """Which key made a hash: enough to see a rotation, useless to recover the key."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:12]


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def response_text(capture: Capture) -> str:
    """The assistant's text from the relayed answer or stream, in the client's format."""
    if capture.embeddings:
        return ""
    fmt = codec(capture.dialect)
    if capture.stream:
        raw = b"".join(capture.stream) + b"\n\n"  # the last event may lack its blank line
        decoder = fmt.stream_to_ir()
        parts = []
        for event in EventBuffer(len(raw)).feed(raw):
            try:
                found = decoder.feed(event)
            except Exception:  # an event the decoder refuses holds no text
                found = ()
            parts.extend(e.text for e in found if type(e) is TextDelta)
        return "".join(parts)
    if not capture.response:
        return ""
    answer = fmt.response_to_ir(orjson.loads(capture.response))
    return "\n".join(p.text for p in answer.parts if type(p) is Text)


def _scrub_tree(value, patterns, counts: dict[str, int]):
    """`value` (parsed JSON) with every string scrubbed; inline data (base64 images, data:
    URLs) becomes [DATA]: it is not text, and scanning megabytes of base64 finds only noise."""
    if isinstance(value, str):
        if value.startswith("data:"):
            return _DATA
        found = pii.scrub(value, extra_patterns=patterns)
        for label, n in found.counts.items():
            counts[label] = counts.get(label, 0) + n
        return found.text
    if isinstance(value, list):
        return [_scrub_tree(v, patterns, counts) for v in value]
    if isinstance(value, dict):
        if value.get("type") == "base64" and "data" in value:  # an Anthropic image source
            value = {**value, "data": _DATA}
        return {
            k: (v if k in _PLAIN_KEYS else _scrub_tree(v, patterns, counts))
            for k, v in value.items()
        }
    return value


def _redacted(capture: Capture) -> Content:
    counts: dict[str, int] = {}
    prompt = _scrub_tree(orjson.loads(capture.prompt), capture.patterns, counts)
    found = pii.scrub(response_text(capture), extra_patterns=capture.patterns)
    for label, n in found.counts.items():
        counts[label] = counts.get(label, 0) + n
    return Content(
        mode="redacted",
        prompt=orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS).decode(),
        response=found.text,
        redactions=counts,
    )


def _hashed(capture: Capture, key: bytes) -> Content:
    response = response_text(capture)
    return Content(
        mode="hashed",
        prompt_hmac=_hmac(key, capture.prompt),
        response_hmac=_hmac(key, response.encode()) if response else "",
        hmac_key_id=key_id(key),
    )


def _full(capture: Capture) -> Content:
    return Content(mode="full", prompt=capture.prompt.decode(), response=response_text(capture))


def _size(capture: Capture) -> int:
    return len(capture.prompt) + len(capture.response) + sum(len(c) for c in capture.stream)


async def build(capture: Capture, request_id: str) -> Content | None:
    """The content to put on the usage event, or None to store none."""
    global _warned_no_key
    if capture.mode == "hashed":
        key = hmac_key()
        if not key:
            if not _warned_no_key:
                _warned_no_key = True
                log.warning(
                    "privacy mode 'hashed' without GATEWAY_CONTENT_HMAC_KEY: no content is "
                    "stored for such requests (first: %s)",
                    request_id,
                )
            return None
        make = lambda: _hashed(capture, key)  # noqa: E731
    elif capture.mode == "redacted":
        make = lambda: _redacted(capture)  # noqa: E731
    elif capture.mode == "full":
        make = lambda: _full(capture)  # noqa: E731
    else:
        return None
    try:
        return await run_scrubber(make, _size(capture))
    except pii.ScrubError as exc:
        log.error("request %s: content not stored: %s", request_id, exc)
    except Exception as exc:  # never the raw text instead, whatever failed
        log.error("request %s: content not stored (%s)", request_id, exc.__class__.__name__)
    return None
