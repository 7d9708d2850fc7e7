"""Capabilities on the hot path: a request goes to a deployment that has what it needs, or is
refused with 400 naming the field that needs it, before any upstream is called."""

import openai
import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team

from .support import TEAM, assert_openai_error, wait_for_usage_record

# Added to the e2e configuration (whose providers all point at the fake upstream).
CAPABILITY_MODELS = """
models:
  # One deployment that can do little: every capability refusal shows on it.
  - name: cap-text
    deployments:
      - provider: fake-primary
        model: fake-cap-text
        capabilities: {context_window: 1000, max_output_tokens: 200, tools: false,
                       vision: false, json_mode: false, streaming: false}
  # A cheap text-only deployment before a dearer one that sees images.
  - name: cap-mixed
    deployments:
      - provider: fake-primary
        model: fake-cap-cheap
        input_cost_per_mtok: 0.1
        output_cost_per_mtok: 0.2
        capabilities: {vision: false, max_output_tokens: 100, context_window: 4000}
      - provider: fake-backup
        model: fake-cap-vision
        input_cost_per_mtok: 1
        output_cost_per_mtok: 2
        context_window: 8000
"""

TEXT = [{"role": "user", "content": "Say hello."}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture
def key(gateway) -> str:
    config_load(text=CAPABILITY_MODELS)
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return gateway.issue_key(name="capabilities")


def _post(gateway, key: str, body: dict):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth(key))


@pytest.mark.parametrize(
    ("fields", "param", "needed"),
    [
        ({"tools": [TOOL]}, "tools", "tools (function calling)"),
        ({"tool_choice": "auto"}, "tool_choice", "tools (function calling)"),
        ({"messages": IMAGE}, "messages[0].content[1]", "image input (vision)"),
        ({"response_format": {"type": "json_object"}}, "response_format", "JSON mode"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
            "JSON mode",
        ),
        ({"stream": True}, "stream", "streaming"),
    ],
    ids=["tools", "tool_choice", "image", "json_object", "json_schema", "stream"],
)
def test_a_capability_no_deployment_has_is_refused_naming_the_field(
    gateway, upstream, key, fields, param, needed
):
    response = _post(gateway, key, {"model": "cap-text", "messages": TEXT, **fields})

    error = assert_openai_error(response, 400, "capability_not_supported")
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert needed in error["message"]
    assert "cap-text" in error["message"]
    assert upstream.received("/v1/chat/completions") == []
    record = wait_for_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (400, "capability_not_supported")


def test_the_sdk_sees_a_refused_stream_as_a_bad_request_naming_stream(gateway, upstream, key):
    with pytest.raises(openai.BadRequestError) as excinfo:
        gateway.client(key).chat.completions.create(model="cap-text", messages=TEXT, stream=True)
    assert excinfo.value.status_code == 400
    assert excinfo.value.body["param"] == "stream"
    assert upstream.received("/v1/chat/completions") == []


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_more_output_than_the_deployment_allows_is_refused_naming_the_limit(
    gateway, upstream, key, field
):
    response = _post(gateway, key, {"model": "cap-text", "messages": TEXT, field: 201})

    error = assert_openai_error(response, 400, "max_output_tokens_exceeded")
    assert error["param"] == field
    assert f"'{field}' is 201, more than the 200 output tokens" in error["message"]
    assert upstream.received("/v1/chat/completions") == []


def test_output_within_the_limit_is_served(gateway, upstream, key):
    response = _post(gateway, key, {"model": "cap-text", "messages": TEXT, "max_tokens": 200})
    assert response.status_code == 200, response.text


def _prompt(tokens: int) -> list[dict]:
    # The gateway estimates four characters per token.
    return [{"role": "user", "content": "x" * (4 * tokens)}]


def test_prompt_plus_output_up_to_the_context_window_is_served(gateway, upstream, key):
    body = {"model": "cap-text", "messages": _prompt(800), "max_tokens": 200}
    response = _post(gateway, key, body)
    assert response.status_code == 200, response.text
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-cap-text"


def test_prompt_plus_output_beyond_the_context_window_is_refused_naming_both(
    gateway, upstream, key
):
    body = {"model": "cap-text", "messages": _prompt(900), "max_tokens": 150}
    response = _post(gateway, key, body)

    error = assert_openai_error(response, 400, "context_length_exceeded")
    assert error["param"] == "max_tokens"
    assert error["message"] == (
        "The prompt (about 900 tokens, estimated) plus 'max_tokens' (150) is 1050 tokens, more "
        "than the context window of model 'cap-text': 1000 tokens."
    )
    assert upstream.received("/v1/chat/completions") == []


def test_a_prompt_alone_beyond_the_context_window_is_refused_naming_the_messages(
    gateway, upstream, key
):
    response = _post(gateway, key, {"model": "cap-text", "messages": _prompt(1001)})
    error = assert_openai_error(response, 400, "context_length_exceeded")
    assert error["param"] == "messages"
    assert "about 1001 tokens" in error["message"]
    assert "1000 tokens" in error["message"]


def test_a_capable_dearer_deployment_is_chosen_over_an_incapable_cheaper_one(
    gateway, upstream, key
):
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="cap-mixed", messages=IMAGE
    )

    assert raw.headers["x-gateway-deployment"] == "fake-backup/fake-cap-vision"
    assert raw.headers["x-gateway-attempts"] == "1"
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-cap-vision"
    assert sent.body["messages"] == IMAGE
    record = wait_for_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.upstream_model) == (200, "fake-cap-vision")


def test_a_request_the_cheaper_deployment_can_serve_still_goes_there(gateway, upstream, key):
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="cap-mixed", messages=TEXT
    )
    assert raw.headers["x-gateway-deployment"] == "fake-primary/fake-cap-cheap"


def test_limits_also_steer_to_a_capable_deployment(gateway, upstream, key):
    # Above the cheap one's 100 output tokens, and its 4000-token window; the other takes both.
    body = {"model": "cap-mixed", "messages": _prompt(3950), "max_tokens": 101}
    response = _post(gateway, key, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == "fake-backup/fake-cap-vision"


def test_streaming_to_a_capable_deployment_is_served(gateway, upstream, key):
    stream = gateway.client(key).chat.completions.create(
        model="cap-mixed", messages=IMAGE, stream=True
    )
    chunks = list(stream)
    assert chunks
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["model"] == "fake-cap-vision"
