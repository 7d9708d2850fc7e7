"""Privacy on the hot path, in process: where prompt texts are found, prompt scrubbing and its
refusal, the canonical prompt, and the content each privacy mode builds (gateway/proxy/privacy.py,
gateway/proxy/content.py)."""

import asyncio
import copy
import hashlib
import hmac
import logging
import threading

import orjson
import pytest

from gateway.proxy import content, privacy
from infra import pii
from infra.pii import compile_patterns

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"
KEY = "k" * 40


def _run(coro):
    return asyncio.run(coro)


def _failing_detector(*_args, **_kwargs):
    raise RuntimeError("boom")


OPENAI_BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": f"Write to {EMAIL}."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Card {CARD}"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "call +1 415 555 2671"},
    ],
    "temperature": 0.2,
}

ANTHROPIC_BODY = {
    "model": "m",
    "max_tokens": 10,
    "system": [{"type": "text", "text": f"Admin is {EMAIL}"}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": f"owner {EMAIL}"},
                {"type": "text", "text": "hello"},
            ],
        }
    ],
}


def test_prompt_slots_find_every_text_of_both_dialects_and_embeddings():
    texts = [c[k] for c, k in privacy.prompt_slots(copy.deepcopy(OPENAI_BODY))]
    assert texts == [f"Write to {EMAIL}.", f"Card {CARD}", "call +1 415 555 2671"]
    texts = [c[k] for c, k in privacy.prompt_slots(copy.deepcopy(ANTHROPIC_BODY))]
    assert texts == [f"Admin is {EMAIL}", f"owner {EMAIL}", "hello"]
    texts = [c[k] for c, k in privacy.prompt_slots({"input": ["a", [1, 2], "b"]})]
    assert texts == ["a", "b"]


def test_scrub_prompt_replaces_pii_in_place_and_counts_it():
    body = copy.deepcopy(OPENAI_BODY)
    count = _run(privacy.scrub_prompt(body, (), "req-1"))
    assert count == 3
    assert body["messages"][0]["content"] == "Write to [EMAIL]."
    assert body["messages"][1]["content"][0]["text"] == "Card [CARD]"
    assert body["messages"][2]["content"] == "call [PHONE]"
    # Not text: left alone.
    assert body["messages"][1]["content"][1] == OPENAI_BODY["messages"][1]["content"][1]
    assert body["temperature"] == 0.2


def test_scrub_prompt_uses_the_policys_patterns():
    body = {"messages": [{"role": "user", "content": "ticket for EMP-123456"}]}
    patterns = compile_patterns({"EMPLOYEE_ID": r"EMP-\d{6}"})
    assert _run(privacy.scrub_prompt(body, patterns, "req-1")) == 1
    assert body["messages"][0]["content"] == "ticket for [EMPLOYEE_ID]"


def test_large_prompts_are_scrubbed_off_the_event_loop(settings, monkeypatch):
    settings.GATEWAY_PII_OFFLOOP_CHARS = 100
    threads = []
    real = pii.scrub

    def spy(text, **kwargs):
        threads.append(threading.current_thread().name)
        return real(text, **kwargs)

    monkeypatch.setattr(pii, "scrub", spy)
    body = {"messages": [{"role": "user", "content": f"{EMAIL} " + "x" * 200}]}
    assert _run(privacy.scrub_prompt(body, (), "req-1")) == 1
    small = {"messages": [{"role": "user", "content": EMAIL}]}
    assert _run(privacy.scrub_prompt(small, (), "req-2")) == 1
    assert threads[0] != "MainThread"
    assert threads[1] == "MainThread"


def test_a_failing_detector_refuses_the_request_and_leaves_the_body(monkeypatch, caplog):
    monkeypatch.setattr(pii, "_card_spans", _failing_detector)
    body = copy.deepcopy(OPENAI_BODY)
    with caplog.at_level(logging.ERROR), pytest.raises(privacy.PromptScrubFailed) as raised:
        _run(privacy.scrub_prompt(body, (), "req-42"))
    assert raised.value.status == 500
    assert raised.value.code == "pii_scrub_failed"
    assert body == OPENAI_BODY  # nothing half-scrubbed, and certainly not sent
    assert "req-42" in caplog.text and "'card'" in caplog.text
    assert EMAIL not in caplog.text and "4111" not in caplog.text


def test_the_canonical_prompt_is_sorted_compact_json_of_the_conversation_only():
    body = {"model": "a", "temperature": 1, "messages": [{"role": "user", "content": "hé"}]}
    assert privacy.canonical_prompt(body, embeddings=False) == (
        '{"messages":[{"content":"hé","role":"user"}]}'.encode()
    )
    other = {**body, "model": "b", "temperature": 0}
    assert privacy.canonical_prompt(other, embeddings=False) == privacy.canonical_prompt(
        body, embeddings=False
    )
    assert privacy.canonical_prompt(ANTHROPIC_BODY, embeddings=False).startswith(b'{"messages"')
    assert b'"system"' in privacy.canonical_prompt(ANTHROPIC_BODY, embeddings=False)
    assert privacy.canonical_prompt({"input": ["x"]}, embeddings=True) == b'{"input":["x"]}'


def _capture(mode, body=OPENAI_BODY, *, dialect="openai", patterns=()):
    return privacy.Capture(
        mode,
        privacy.canonical_prompt(body, embeddings=False),
        dialect=dialect,
        embeddings=False,
        patterns=patterns,
    )


def _answer(text: str) -> bytes:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    body = {"id": "x", "object": "chat.completion", "model": "m", "choices": [choice]}
    return orjson.dumps({**body, "usage": usage})


def test_hashed_content_is_the_hmac_of_the_canonical_prompt_and_the_reply(settings):
    settings.GATEWAY_CONTENT_HMAC_KEY = KEY
    capture = _capture("hashed")
    capture.response = _answer(f"mail {EMAIL}")
    found = _run(content.build(capture, "r"))
    canonical = privacy.canonical_prompt(OPENAI_BODY, embeddings=False)
    assert found.prompt_hmac == hmac.new(KEY.encode(), canonical, hashlib.sha256).hexdigest()
    reply = f"mail {EMAIL}".encode()
    assert found.response_hmac == hmac.new(KEY.encode(), reply, hashlib.sha256).hexdigest()
    assert found.prompt == found.response == ""
    assert len(found.hmac_key_id) == 12 and found.hmac_key_id not in KEY


def test_hashed_without_a_key_stores_nothing(settings, caplog):
    settings.GATEWAY_CONTENT_HMAC_KEY = ""
    with caplog.at_level(logging.WARNING):
        assert _run(content.build(_capture("hashed"), "r")) is None


def test_redacted_content_is_scrubbed_and_counted():
    capture = _capture("redacted")
    capture.response = _answer(f"I wrote to {EMAIL} about {CARD}.")
    found = _run(content.build(capture, "r"))
    stored = found.prompt + found.response
    assert EMAIL not in stored and CARD not in stored and "555 2671" not in stored
    assert found.response == "I wrote to [EMAIL] about [CARD]."
    prompt = orjson.loads(found.prompt)
    assert prompt["messages"][0] == {"role": "system", "content": "Write to [EMAIL]."}
    # Inline data is not text: dropped, not scanned.
    assert prompt["messages"][1]["content"][1]["image_url"]["url"] == "[DATA]"
    assert found.redactions == {"EMAIL": 2, "CARD": 2, "PHONE": 1}


def test_redacted_content_uses_the_policys_patterns():
    body = {"messages": [{"role": "user", "content": "EMP-123456 asks"}]}
    capture = _capture("redacted", body, patterns=compile_patterns({"emp": r"EMP-\d{6}"}))
    found = _run(content.build(capture, "r"))
    assert orjson.loads(found.prompt)["messages"][0]["content"] == "[EMP] asks"


def test_full_content_is_as_sent():
    capture = _capture("full")
    capture.response = _answer(f"to {EMAIL}")
    found = _run(content.build(capture, "r"))
    assert found.prompt == privacy.canonical_prompt(OPENAI_BODY, embeddings=False).decode()
    assert found.response == f"to {EMAIL}"
    assert found.redactions == {}


def _sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def test_a_stream_is_assembled_from_its_relayed_chunks_however_they_were_cut():
    capture = _capture("redacted")
    words = ["Reach ", "me at ", "jane.roe@", "example.com", " today"]
    raw = b"".join(
        _sse({"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"content": w}}]})
        for w in words
    )
    raw += b"data: [DONE]\n\n"
    for start in range(0, len(raw), 7):  # cut anywhere, mid-event included
        capture.feed(raw[start : start + 7])
    assert content.response_text(capture) == f"Reach me at {EMAIL} today"
    found = _run(content.build(capture, "r"))
    assert found.response == "Reach me at [EMAIL] today"


def test_an_anthropic_stream_is_read_in_its_own_format():
    capture = _capture("full", ANTHROPIC_BODY, dialect="anthropic")
    events = [
        (b"message_start", {"type": "message_start", "message": _anthropic_message()}),
        (b"content_block_start", _block_start()),
        (b"content_block_delta", _text_delta("Hi ")),
        (b"content_block_delta", _text_delta("there")),
        (b"content_block_stop", {"type": "content_block_stop", "index": 0}),
        (b"message_stop", {"type": "message_stop"}),
    ]
    for name, data in events:
        capture.feed(b"event: " + name + b"\n" + _sse(data))
    assert content.response_text(capture) == "Hi there"


def _anthropic_message() -> dict:
    usage = {"input_tokens": 3, "output_tokens": 1}
    return {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": []} | {
        "usage": usage
    }


def _block_start() -> dict:
    return {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }


def _text_delta(text: str) -> dict:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


def test_a_failing_detector_stores_no_content_and_logs_no_text(monkeypatch, caplog):
    monkeypatch.setattr(pii, "_email_spans", _failing_detector)
    capture = _capture("redacted")
    capture.response = _answer(f"to {EMAIL}")
    with caplog.at_level(logging.ERROR):
        assert _run(content.build(capture, "req-77")) is None
    assert "req-77" in caplog.text and "'email'" in caplog.text
    assert EMAIL not in caplog.text


def test_an_unreadable_answer_stores_no_content_rather_than_raw_text():
    capture = _capture("redacted")
    capture.response = b"not json " + EMAIL.encode()
    assert _run(content.build(capture, "r")) is None
