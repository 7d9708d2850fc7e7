"""The declared request schemas: what they refuse (naming the `param`) and what they let by."""

import pytest

from gateway.proxy.errors import BadRequest
from gateway.proxy.parsing import find_forbidden
from gateway.proxy.validation import validate_chat, validate_embeddings

USER = {"role": "user", "content": "hi"}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def chat(**fields) -> dict:
    return {"model": "chat-fast", "messages": [USER], **fields}


def _refusal(validate, body: dict) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        validate(body)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    return caught.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [USER]}, "model"),
        (chat(model=""), "model"),
        (chat(model=42), "model"),
        (chat(model="m" * 201), "model"),
        ({"model": "chat-fast"}, "messages"),
        (chat(messages=[]), "messages"),
        (chat(messages="hi"), "messages"),
        (chat(messages=["hi"]), "messages[0]"),
        (chat(messages=[USER, USER, {"role": "robot", "content": "x"}]), "messages[2].role"),
        (chat(messages=[{"content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user"}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": None}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": 7}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": []}]), "messages[0].content"),
        (
            chat(messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "messages[0].content[0].type",
        ),
        (chat(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content[0]"),
        (chat(messages=[{"role": "system", "content": None}]), "messages[0].content"),
        (chat(messages=[USER, {"role": "assistant"}]), "messages[1].content"),
        (chat(messages=[USER, {"role": "assistant", "content": None}]), "messages[1].content"),
        (chat(messages=[{"role": "tool", "content": "42"}]), "messages[0].tool_call_id"),
        (
            chat(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]),
            "messages[0].tool_calls[0].function.name",
        ),
        (chat(temperature=2.5), "temperature"),
        (chat(temperature=-0.1), "temperature"),
        (chat(temperature="hot"), "temperature"),
        (chat(top_p=1.5), "top_p"),
        (chat(n=0), "n"),
        (chat(n=True), "n"),
        (chat(n=1.5), "n"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_completion_tokens=-1), "max_completion_tokens"),
        (chat(presence_penalty=2.1), "presence_penalty"),
        (chat(frequency_penalty=-3), "frequency_penalty"),
        (chat(seed="42"), "seed"),
        (chat(logprobs="yes"), "logprobs"),
        (chat(top_logprobs=21), "top_logprobs"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options="usage"), "stream_options"),
        (chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (chat(stop=5), "stop"),
        (chat(logit_bias={"50256": 101}), "logit_bias"),
        (chat(tools=[{"function": {"name": "f"}}]), "tools[0].type"),
        (chat(tools=[{"type": "function", "function": {"name": 3}}]), "tools[0].function.name"),
        (chat(response_format={"json_schema": {}}), "response_format.type"),
    ],
)
def test_invalid_chat_request_names_the_field(body, param):
    error = _refusal(validate_chat, body)

    assert error.param == param
    assert f"'{param}'" in error.message


def test_unknown_role_lists_the_valid_ones():
    error = _refusal(validate_chat, chat(messages=[{"role": "robot", "content": "x"}]))

    assert "'robot'" in error.message
    assert "system, developer, user, assistant, tool, function" in error.message


def test_missing_field_says_it_is_required():
    error = _refusal(validate_chat, {"model": "chat-fast"})

    assert error.message == "Missing required parameter: 'messages'."


@pytest.mark.parametrize(
    "body",
    [
        chat(),
        # Everything the API defines, at the edges of its ranges.
        chat(
            temperature=0,
            top_p=1,
            n=1,
            max_tokens=1,
            max_completion_tokens=1,
            presence_penalty=-2,
            frequency_penalty=2,
            seed=-5,
            logprobs=True,
            top_logprobs=20,
            stream=True,
            stream_options={"include_usage": True},
            stop=["\n", "END"],
            logit_bias={"50256": -100},
            user="u-1",
            parallel_tool_calls=False,
            tool_choice={"type": "function", "function": {"name": "f"}},
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        ),
        # Integers where the API takes numbers; JSON null for anything optional.
        chat(temperature=1, top_p=None, max_tokens=None, stream=None, stop="\n"),
        # Every role, multi-part content, and an assistant turn that only calls a tool.
        chat(
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                {
                    "role": "user",
                    "name": "ann",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                },
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "function", "name": "f", "content": None},
                {"role": "assistant", "content": "It is 42."},
            ]
        ),
        # Provider-specific parameters and fields the schema does not know pass untouched.
        chat(top_k=40, repetition_penalty=1.1, safe_prompt=True, thinking={"type": "enabled"}),
        chat(messages=[{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}]),
    ],
)
def test_valid_chat_request_passes(body):
    assert validate_chat(body).model == "chat-fast"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "embed-small"}, "input"),
        ({"model": "embed-small", "input": ""}, "input"),
        ({"model": "embed-small", "input": []}, "input"),
        ({"model": "embed-small", "input": None}, "input"),
        ({"model": "embed-small", "input": 5}, "input"),
        ({"model": "embed-small", "input": ["a", ""]}, "input[1]"),
        ({"model": "embed-small", "input": ["a", 1]}, "input"),
        ({"model": "embed-small", "input": [[1, 2], 3]}, "input"),
        ({"model": "embed-small", "input": [-1]}, "input[0]"),
        ({"model": "embed-small", "input": [[]]}, "input[0]"),
        ({"model": "embed-small", "input": [[1, "a"]]}, "input[0][1]"),
        ({"model": "embed-small", "input": [{"text": "a"}]}, "input[0]"),
        ({"model": "embed-small", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "embed-small", "input": "a", "encoding_format": "hex"}, "encoding_format"),
    ],
)
def test_invalid_embeddings_request_names_the_field(body, param):
    assert _refusal(validate_embeddings, body).param == param


@pytest.mark.parametrize(
    "value",
    ["one text", ["first", "second"], [1, 2, 3], [[1, 2], [3]]],
    ids=["string", "strings", "token ids", "token arrays"],
)
def test_valid_embeddings_input_passes(value):
    body = {"model": "embed-small", "input": value, "dimensions": 8, "encoding_format": "base64"}
    assert validate_embeddings(body).input == value


# --- fields that try to choose the upstream ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"api_base": "http://127.0.0.1:9/v1"}, "api_base"),
        ({"base_url": "http://127.0.0.1:9/v1"}, "base_url"),
        ({"api_key": "sk-someone-elses"}, "api_key"),
        ({"api_version": "2024-01-01"}, "api_version"),
        ({"organization": "org-x"}, "organization"),
        ({"azure_endpoint": "https://x.openai.azure.com"}, "azure_endpoint"),
        ({"custom_llm_provider": "bedrock"}, "custom_llm_provider"),
        ({"aws_secret_access_key": "x"}, "aws_secret_access_key"),
        ({"aws_region_name": "us-east-1"}, "aws_region_name"),
        ({"vertex_credentials": "{}"}, "vertex_credentials"),
        ({"metadata": {"api_key": "sk-x"}}, "metadata.api_key"),
        ({"metadata": {"nested": [{"base_url": "http://evil"}]}}, "metadata.nested[0].base_url"),
        ({"extra_body": {"api_base": "http://evil"}}, "extra_body.api_base"),
        ({"extra_body": {"aws_access_key_id": "AKIA"}}, "extra_body.aws_access_key_id"),
    ],
)
def test_fields_choosing_the_upstream_are_found_where_the_gateway_reads(extra, path):
    assert find_forbidden(chat(**extra)) == path


@pytest.mark.parametrize(
    "extra",
    [
        {"messages": [{"role": "user", "content": "hi", "api_key": "sk-x"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "api_key"}]}]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "login",
                        "parameters": {
                            "type": "object",
                            "properties": {"api_key": {"type": "string"}, "base_url": {}},
                        },
                    },
                }
            ]
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"properties": {"aws_region_name": {}}}},
            }
        },
    ],
    ids=["message field", "message content", "tool schema", "response format schema"],
)
def test_same_names_inside_the_callers_data_are_not_refused(extra):
    assert find_forbidden(chat(**extra)) is None
