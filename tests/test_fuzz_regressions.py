"""Bugs the fuzz tests found, each pinned by the smallest body that showed it.

Both were 500s: a body the dialect's validation let through met a codec that read a field of
the wrong type (an Anthropic text block whose text is a list; an OpenAI text part whose text
is null, translated for Bedrock)."""

import orjson
import pytest

from gateway.proxy import needs
from gateway.proxy.dialects import ANTHROPIC
from gateway.proxy.errors import BadRequest
from routing.formats import Unsupported, translate_request


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
