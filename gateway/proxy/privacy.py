"""Privacy on the hot path: a policy's prompt scrubbing, and the capture of what its privacy mode
keeps of the content.

Nothing here runs for a caller whose effective policy is in the default `metadata` mode without
`scrub_prompts`: the pipeline tests `policy.handles_content` once and skips the rest.

    scrub_prompts   the prompt's texts (message contents, their text parts, tool results, the
                    Anthropic `system`, embeddings' input) get PII placeholders BEFORE the
                    request goes upstream; the count is the `x-gateway-redactions` header and
                    the usage row's `redactions`. A failing detector refuses the request (500
                    pii_scrub_failed): raw text is never sent instead.
    privacy_mode    hashed | redacted | full: a Capture holds the prompt as sent and the
                    response as relayed; content.py turns it into the usage event's content
                    when the request settles (after the response is sent), so only hashes or
                    scrubbed text (or, opted in, the full text) ever leave this process.

Texts above GATEWAY_PII_OFFLOOP_CHARS are scrubbed in a worker thread, so one huge prompt does
not stall every other request on the event loop.
"""

import asyncio
import logging
from collections.abc import Iterator

import orjson
from django.conf import settings

from infra import pii

from .errors import InternalError

log = logging.getLogger("gateway.proxy")

REDACTIONS_HEADER = "x-gateway-redactions"
CAPTURED_MODES = frozenset({"hashed", "redacted", "full"})

Slot = tuple[object, object]  # (container, key): container[key] is one prompt text


class PromptScrubFailed(InternalError):
    """The policy requires scrubbing the prompt and a detector failed: refused, not sent.

    A 500: the gateway's own failure, not the caller's; retrying the same text fails the same
    way, so not a 503."""

    code = "pii_scrub_failed"


def _part_slots(parts: list) -> Iterator[Slot]:
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            yield part, "text"
        content = part.get("content")  # an Anthropic tool_result block
        if isinstance(content, str):
            yield part, "content"
        elif isinstance(content, list):
            yield from _part_slots(content)


def _content_slots(holder: dict, key: str) -> Iterator[Slot]:
    value = holder.get(key)
    if isinstance(value, str):
        yield holder, key
    elif isinstance(value, list):
        yield from _part_slots(value)


def prompt_slots(data: dict) -> list[Slot]:
    """Where the prompt's texts are, in an OpenAI or Anthropic chat body or an embeddings body."""
    slots: list[Slot] = []
    slots.extend(_content_slots(data, "system"))  # Anthropic's; OpenAI's is a message
    for message in data.get("messages") or ():
        if isinstance(message, dict):
            slots.extend(_content_slots(message, "content"))
    value = data.get("input")  # embeddings: a text or a list of texts (or of token ids)
    if isinstance(value, str):
        slots.append((data, "input"))
    elif isinstance(value, list):
        slots.extend((value, i) for i, v in enumerate(value) if isinstance(v, str))
    return slots


def offloop_chars() -> int:
    return settings.GATEWAY_PII_OFFLOOP_CHARS


async def run_scrubber(fn, size: int):
    """`fn()` here when the text is small, in a worker thread when it is large."""
    if size > offloop_chars():
        return await asyncio.to_thread(fn)
    return fn()


def _scrub_slots(slots: list[Slot], patterns) -> int:
    # Every text first, then the writes: a failure leaves the body as it was.
    results = [pii.scrub(container[key], extra_patterns=patterns) for container, key in slots]
    total = 0
    for (container, key), found in zip(slots, results, strict=True):
        if found.counts:
            container[key] = found.text
            total += found.total
    return total


async def scrub_prompt(data: dict, patterns, request_id: str) -> int:
    """Replace the PII in the prompt's texts, in place; the number of placeholders put in."""
    slots = prompt_slots(data)
    size = sum(len(container[key]) for container, key in slots)
    try:
        return await run_scrubber(lambda: _scrub_slots(slots, patterns), size)
    except pii.ScrubError as exc:
        # The detector's name and the exception's class, never the text.
        log.error("request %s: prompt not scrubbed (%s); refused", request_id, exc)
        raise PromptScrubFailed(
            "the prompt could not be scrubbed of personal data as this key's policy "
            "requires; it was not sent to any provider"
        ) from exc


def canonical_prompt(data: dict, *, embeddings: bool) -> bytes:
    """The prompt as the hashes and the stored content see it: UTF-8 JSON, keys sorted, no
    whitespace, of {"messages": ..., "system": ...} (chat; `system` only when the Anthropic
    body has one) or {"input": ...} (embeddings). Sampling parameters, tools and the model
    are left out: the same conversation hashes the same whatever else changes."""
    if embeddings:
        prompt = {"input": data.get("input")}
    else:
        prompt = {"messages": data.get("messages")}
        if data.get("system") is not None:
            prompt["system"] = data["system"]
    return orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)


class Capture:
    """What a non-`metadata` request keeps until it settles: the prompt as sent upstream, and
    the response as relayed (a complete body, or the stream's bytes as they passed)."""

    __slots__ = ("dialect", "embeddings", "mode", "patterns", "prompt", "response", "stream")

    def __init__(self, mode: str, prompt: bytes, *, dialect: str, embeddings: bool, patterns):
        self.mode = mode
        self.prompt = prompt
        self.dialect = dialect  # the client's wire format: how the response reads
        self.embeddings = embeddings
        self.patterns = patterns
        self.response = b""
        self.stream: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        """A relayed stream chunk: kept as is (no parsing while the stream flows)."""
        self.stream.append(chunk)


async def prepare(ctx, data: dict, *, embeddings: bool, dialect) -> None:
    """For a policy that handles content: scrub the prompt if it says so (before anything
    reads it for the upstream), then start the capture its privacy mode asks for."""
    policy = ctx.policy
    if policy.scrub_prompts:
        ctx.redactions = await scrub_prompt(data, policy.pii_patterns, ctx.request_id)
    if policy.privacy_mode in CAPTURED_MODES:
        ctx.capture = Capture(
            policy.privacy_mode,
            canonical_prompt(data, embeddings=embeddings),
            dialect=dialect.name,
            embeddings=embeddings,
            patterns=policy.pii_patterns,
        )
