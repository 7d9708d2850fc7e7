"""Bugs the fuzz tests found, each pinned by the smallest input that showed it.

Requests: 500s, where a body the dialect's validation let through met a codec that read a
field of the wrong type (an Anthropic text block whose text is a list; an OpenAI text part
whose text is null, translated for Bedrock). Streams: an upstream event with a field of the
wrong type (an index that is a list, a token count that is an object) raised out of the relay,
cutting the client's stream without its error event, or left a usage that could not be
costed; it is Malformed now, which the relay ends with an error event and a 502 in the log."""

import orjson
import pytest

from gateway.proxy import needs
from gateway.proxy.dialects import ANTHROPIC
from gateway.proxy.dialects.anthropic import UsageSniffer
from gateway.proxy.errors import BadRequest
from routing.formats import Malformed, StreamTranslator, Unsupported, translate_request


def test_an_anthropic_block_field_of_the_wrong_type_is_refused_naming_it():
    result = {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": [1]}]}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}

    with pytest.raises(BadRequest) as caught:
        ANTHROPIC.validators["messages"](body)

    assert caught.value.param == "messages[0].content[0].content[0].text"


def test_a_valid_anthropic_tool_result_still_gets_its_needs_worked_out():
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "ok"}],
    }
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}
    ANTHROPIC.validators["messages"](body)

    wanted = needs.chat_needs(ANTHROPIC.chat_view(body), len(orjson.dumps(body)))

    assert wanted.output_tokens == 5


@pytest.mark.parametrize("target", ["anthropic", "gemini", "bedrock"])
def test_a_text_part_without_text_is_a_client_error_for_every_provider_format(target):
    system = {"role": "system", "content": [{"type": "text", "text": None}]}
    body = {"model": "m", "messages": [system, {"role": "user", "content": "hi"}]}

    try:
        translate_request(body, source="openai", target=target, model="up")
    except Unsupported as exc:  # crossing.plan answers it with a 400
        assert "malformed" in exc.message


@pytest.mark.parametrize(
    ("source", "event"),
    [
        (
            "anthropic",
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":[1]}',
        ),
        ("openai", b'data: {"choices":[0.0]}'),
        ("gemini", b'data: {"candidates":[null]}'),
        ("bedrock", b'event: messageStop\ndata: {"stopReason":["end_turn"]}'),
    ],
)
def test_an_upstream_stream_event_with_fields_of_the_wrong_type_is_malformed(source, event):
    translator = StreamTranslator(source, "anthropic" if source == "openai" else "openai")

    with pytest.raises(Malformed):
        translator.feed(event + b"\n\n")


def test_a_streamed_usage_that_is_not_token_counts_is_malformed():
    usage = b'data: {"candidates":[],"usageMetadata":{"promptTokenCount":{"n":1}}}\n\n'
    translator = StreamTranslator("gemini", "openai")

    with pytest.raises(Malformed):
        translator.feed(usage)
    assert translator.usage is None


def test_a_relayed_anthropic_stream_with_a_usage_of_the_wrong_type_is_malformed():
    start = {"type": "message_start", "message": {"usage": {"input_tokens": [3]}}}
    sniffer = UsageSniffer()

    with pytest.raises(Malformed):
        sniffer.feed(b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n")


def test_an_answers_usage_that_is_not_token_counts_is_estimated_not_billed():
    from routing.providers.anthropic import usage_of

    assert usage_of({"usage": {"input_tokens": 3, "output_tokens": "many"}}) is None
