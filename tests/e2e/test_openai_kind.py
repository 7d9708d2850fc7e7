"""The `openai` kind (OpenAI's own API, here pointed at the fake with its api_base): the same
adapter as openai_compatible, exercised through the official SDK like every other kind."""

import json

import pytest

from gateway.config import config_load
from tenants.models import Team
from tests.fake_upstream import REPLY, TOOL_ARGUMENTS, TOOL_CALL_ID

from .support import MESSAGES, PROVIDER_SECRET, only_usage_record

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def openai_model(gateway, upstream):
    config_load(
        text=f"""
providers:
  - name: openai-direct
    kind: openai
    api_base: "{upstream.base_url}"
    api_key: "{PROVIDER_SECRET}"
models:
  - name: gpt-direct
    deployments:
      - {{provider: openai-direct, model: fake-chat-fast, input_cost_per_mtok: 0.5}}
"""
    )
    team = Team.objects.get(pk=gateway.team.pk)
    team.allowed_models = [*team.allowed_models, "gpt-direct"]
    team.save()
    return "gpt-direct"


def test_completion_through_the_openai_kind(gateway, upstream, openai_model):
    raw = gateway.client().chat.completions.with_raw_response.create(
        model=openai_model, messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == REPLY
    received = upstream.received("/v1/chat/completions")[-1]
    assert received.headers["authorization"] == f"Bearer {PROVIDER_SECRET}"
    row = only_usage_record(raw.headers["x-request-id"])
    assert (row.provider_name, row.status_code, row.requested_model) == (
        "openai-direct",
        200,
        openai_model,
    )


def test_streamed_tool_call_through_the_openai_kind(gateway, upstream, openai_model):
    stream = gateway.client().chat.completions.create(
        model=openai_model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert calls == {0: {"id": TOOL_CALL_ID, "name": "get_weather", "arguments": TOOL_ARGUMENTS}}
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
