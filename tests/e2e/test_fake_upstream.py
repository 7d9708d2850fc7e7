"""The fake upstream itself: the official SDK accepts its answers, and its CLI serves them.

Everything else in this package trusts the fake to speak OpenAI's wire format; these tests
check that trust against the SDK's own parsing, with no gateway in between.
"""

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_upstream import COMPLETION_TOKENS, EMBEDDING_DIMS, PROMPT_TOKENS, REPLY

from .support import PROVIDER_SECRET

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_client(upstream):
    return openai.OpenAI(base_url=upstream.base_url, api_key=PROVIDER_SECRET, max_retries=0)


def test_sdk_parses_completions_streams_and_embeddings_from_the_fake(fake_client):
    completion = fake_client.chat.completions.create(model="m", messages=[{"role": "user"}])
    assert completion.choices[0].message.content == REPLY
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )

    chunks = list(
        fake_client.chat.completions.create(
            model="m", messages=[], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == REPLY
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    )

    # The SDK asks for base64 by default and decodes it; floats must survive the round trip.
    embeddings = fake_client.embeddings.create(model="e", input=["a", "b", "c"])
    assert len(embeddings.data) == 3
    assert len(embeddings.data[0].embedding) == EMBEDDING_DIMS


def test_fake_refuses_a_wrong_credential_like_openai(fake_client, upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        fake_client.with_options(api_key="sk-wrong").models.list()
    assert caught.value.code == "invalid_api_key"


def test_fault_for_the_next_request_only_applies_once(fake_client, upstream):
    upstream.fail(503, times=1)

    with pytest.raises(openai.InternalServerError):
        fake_client.models.list()
    assert [m.id for m in fake_client.models.list()] == ["fake-chat", "fake-embed"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _cli_upstream(*flags: str):
    """`python -m tests.fake_upstream` on a free port; yields its /v1 base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_upstream", "--port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the CLI server did not come up"
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serves_the_fake_upstream_for_benchmarks():
    with _cli_upstream() as base:
        # No credential configured on the command line: any key is accepted.
        client = openai.OpenAI(base_url=base, api_key="anything", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == REPLY


def test_cli_slow_stream_spaces_one_event_per_word():
    # The benchmark's slow upstream: --reply sets the words, --chunk-delay-s the gap between
    # events, so a stream stays open for (events - 1) * delay.
    with _cli_upstream("--chunk-delay-s", "0.2", "--reply", "one two three") as base:
        client = openai.OpenAI(base_url=base, api_key="anything", max_retries=0)
        started = time.monotonic()
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        arrivals, text = [], ""
        for chunk in stream:
            arrivals.append(time.monotonic() - started)
            text += chunk.choices[0].delta.content or ""
        assert text == "one two three"
        # Role event, three words, the finish event: four gaps of 0.2 s before [DONE].
        assert len(arrivals) == 5
        assert arrivals[-1] - arrivals[0] >= 0.75
        assert arrivals[0] < 0.5  # the first event is not delayed
