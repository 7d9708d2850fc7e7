"""Privacy modes end to end: what each mode leaves in the database, the usage stream and the
logs, for chat (plain and streamed), Anthropic-style messages and embeddings."""

import hashlib
import hmac
import json
import time

import httpx
import pytest
from django.conf import settings

from billing.models import UsageContent, UsageRecord
from tests.helpers_net import WebProcess
from tests.helpers_proc import subprocess_database_url
from tests.pii_corpus import POSITIVES

from .privacy_support import (
    canary,
    database_dump,
    post_chat,
    post_embeddings,
    post_messages,
    set_team_policy,
    stored_content,
    usage_stream_raw,
)
from .support import wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

HMAC_KEY = "test-only-content-hmac-key-0123456789abcdef"


@pytest.fixture
def reply(upstream):
    """Sets the fake upstream's answer for one test; the default comes back afterwards."""
    before = upstream.reply
    yield upstream.set_reply
    upstream.set_reply(before)


def _canonical(prompt: dict) -> bytes:
    # Written independently of the gateway's code: sorted keys, no whitespace, UTF-8.
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hmac(data: bytes) -> str:
    return hmac.new(HMAC_KEY.encode(), data, hashlib.sha256).hexdigest()


# --- metadata ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    """A web process of its own (uvicorn, as in production) logging everything it would log,
    at DEBUG, to a file the test reads."""
    process = WebProcess(
        tmp_path_factory.mktemp("privacy"),
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        WEB_CONCURRENCY="1",
        LOG_LEVEL="DEBUG",
    )
    process.start()
    yield process
    process.stop()


def test_metadata_mode_keeps_no_content_anywhere(web, gateway, reply):
    prompt, answer = canary("prompt"), canary("reply")
    reply(f"The answer is {answer}")
    messages = [{"role": "user", "content": f"Remember {prompt}"}]
    headers = {"authorization": f"Bearer {gateway.key}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=15) as http:
        plain = http.post("/v1/chat/completions", json={"model": "chat-fast", "messages": messages})
        streamed = http.post(
            "/v1/chat/completions",
            json={"model": "chat-fast", "messages": messages, "stream": True},
        )
        anthropic = http.post(
            "/v1/messages",
            json={"model": "chat-fast", "max_tokens": 50, "messages": messages},
            headers={"anthropic-version": "2023-06-01"},
        )
        embedded = http.post("/v1/embeddings", json={"model": "embed-small", "input": prompt})
        failed = http.post(
            "/v1/chat/completions", json={"model": "chat-down", "messages": messages}
        )
    assert answer in plain.text and answer in streamed.text and answer in anthropic.text
    assert embedded.status_code == 200 and failed.status_code >= 500
    assert "x-gateway-redactions" not in plain.headers

    # Read before ingestion drains it; usage is appended just after each response.
    deadline = time.monotonic() + 10
    while (stream := usage_stream_raw()).count(b'"request_id"') < 5:
        assert time.monotonic() < deadline, stream
        time.sleep(0.05)
    records = wait_for_usage_records(5)
    assert all(r.redactions == 0 for r in records)
    assert not UsageContent.objects.exists()
    dump = database_dump()
    log = web.log.read_text()
    # The log is being written: each request's access line, the failed attempt's warning.
    assert '"POST /v1/messages HTTP/1.1" 200' in log
    assert "closed-port/fake-chat-down failed" in log
    for text in (prompt, answer):
        assert text not in dump
        assert text.encode() not in stream
        assert text not in log


# --- hashed -----------------------------------------------------------------------------------


def test_hashed_mode_stores_keyed_hashes_only(gateway, upstream, settings):
    settings.GATEWAY_CONTENT_HMAC_KEY = HMAC_KEY
    set_team_policy(gateway.team, privacy_mode="hashed")
    same = [{"role": "user", "content": f"Same question {canary('p')}"}]
    other = [{"role": "user", "content": f"Other question {canary('p')}"}]
    for messages in (same, same, other):
        assert post_chat(gateway, messages, temperature=0.5).status_code == 200
    assert post_embeddings(gateway, same[0]["content"]).status_code == 200

    wait_for_usage_records(4)
    first, second, third, embedded = stored_content()
    assert {c.mode for c in stored_content()} == {"hashed"}
    assert first.prompt_hmac == second.prompt_hmac != third.prompt_hmac
    assert first.prompt_hmac == _hmac(_canonical({"messages": same}))
    assert third.prompt_hmac == _hmac(_canonical({"messages": other}))
    assert first.response_hmac == _hmac(upstream.reply.encode())
    assert embedded.prompt_hmac == _hmac(_canonical({"input": same[0]["content"]}))
    assert embedded.response_hmac == ""
    assert len({c.hmac_key_id for c in stored_content()}) == 1
    assert first.hmac_key_id not in HMAC_KEY
    assert first.prompt == first.response == ""
    dump = database_dump()
    assert same[0]["content"] not in dump and other[0]["content"] not in dump
    assert upstream.reply not in dump


def test_hashed_mode_without_a_key_stores_nothing(gateway, settings):
    settings.GATEWAY_CONTENT_HMAC_KEY = ""
    set_team_policy(gateway.team, privacy_mode="hashed")
    assert post_chat(gateway, [{"role": "user", "content": "hi"}]).status_code == 200
    wait_for_usage_records(1)
    assert not UsageContent.objects.exists()


# --- redacted ---------------------------------------------------------------------------------

KINDS = ("EMAIL", "CARD", "PHONE")
# Corpus texts holding emails, cards or phones (read as US numbers, the default region).
CORPUS = [c for c in POSITIVES if c.region == "US" and any(k in KINDS for k, _ in c.pii)]


def _texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    return []


def test_redacted_mode_stores_no_email_card_or_phone_of_the_corpus(gateway, reply):
    assert len(CORPUS) >= 20
    set_team_policy(gateway.team, privacy_mode="redacted")
    # Every other case in the prompt (one message each), the rest in the answer.
    reply("\n".join(c.text for c in CORPUS[1::2]))
    messages = [{"role": "user", "content": c.text} for c in CORPUS[::2]]
    response = post_chat(gateway, messages)
    assert response.status_code == 200
    # The client gets the answer as the provider gave it: redaction is for storage.
    assert response.json()["choices"][0]["message"]["content"].startswith(CORPUS[1].text)

    wait_for_usage_records(1)
    [stored] = stored_content()
    assert stored.mode == "redacted"
    texts = [*_texts(json.loads(stored.prompt)), stored.response]
    leaked = [
        found
        for c in CORPUS
        for kind, found in c.pii
        if kind in KINDS and any(found in t for t in texts)
    ]
    assert leaked == []
    expected = {k: 0 for k in KINDS}
    for case in CORPUS:
        for kind, _ in case.pii:
            if kind in KINDS:
                expected[kind] += 1
    for kind in KINDS:
        assert stored.redactions[kind] >= expected[kind]
        assert f"[{kind}]" in stored.prompt and f"[{kind}]" in stored.response
    dump = database_dump()
    assert [f for c in CORPUS for k, f in c.pii if k in KINDS and f in dump] == []


def test_a_redacted_stream_is_stored_scrubbed_and_relayed_as_is(gateway, reply):
    set_team_policy(gateway.team, privacy_mode="redacted")
    reply("Write to jane.roe@example.com or call (415) 555-2671 today")
    with (
        gateway.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "chat-fast",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers=gateway.auth(),
        ) as response,
    ):
        body = "".join(response.iter_text())
    assert "jane.roe@" in body  # the client's stream is not held back or changed

    wait_for_usage_records(1)
    [stored] = stored_content()
    assert stored.response == "Write to [EMAIL] or call [PHONE] today"
    assert stored.redactions == {"EMAIL": 1, "PHONE": 1}
    assert UsageRecord.objects.get().stream is True


def test_redacted_anthropic_messages_scrub_the_system_prompt_too(gateway, reply):
    set_team_policy(gateway.team, privacy_mode="redacted")
    reply("Sure, mailing ops@example.org")
    response = post_messages(
        gateway,
        [{"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]}],
        system="The admin is admin@example.com",
    )
    assert response.status_code == 200, response.text

    wait_for_usage_records(1)
    [stored] = stored_content()
    prompt = json.loads(stored.prompt)
    assert prompt["system"] == "The admin is [EMAIL]"
    assert prompt["messages"][0]["content"][0]["text"] == "card [CARD]"
    assert stored.response == "Sure, mailing [EMAIL]"


# --- full -------------------------------------------------------------------------------------


def test_full_mode_stores_the_content_as_sent(gateway, upstream):
    set_team_policy(gateway.team, privacy_mode="full")
    messages = [{"role": "user", "content": "Mail jane.roe@example.com, s'il vous plaît"}]
    assert post_chat(gateway, messages, temperature=0).status_code == 200

    wait_for_usage_records(1)
    [stored] = stored_content()
    assert stored.mode == "full"
    assert stored.prompt.encode() == _canonical({"messages": messages})
    assert stored.response == upstream.reply
    assert (stored.prompt_hmac, stored.redactions) == ("", {})
