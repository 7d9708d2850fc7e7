"""Requests are checked against the declared schemas before anything goes upstream."""

import openai
import pytest

from .support import MESSAGES, assert_openai_error, only_usage_record

LOGIN_TOOL = {
    "type": "function",
    "function": {
        "name": "login",
        "parameters": {
            "type": "object",
            "properties": {"api_key": {"type": "string"}, "base_url": {"type": "string"}},
        },
    },
}


def _post(gateway, path: str, body: dict):
    with gateway.http() as http:
        return http.post(path, json=body, headers=gateway.auth())


def test_invalid_message_role_is_refused_naming_the_message(gateway, upstream):
    messages = [*MESSAGES, {"role": "assistant", "content": "hi"}, {"role": "robot"}]
    response = _post(gateway, "/v1/chat/completions", {"model": "chat-fast", "messages": messages})

    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[2].role"
    assert "'robot'" in error["message"]
    assert upstream.requests == []
    # The key was valid: the refusal is in the usage log, with the model it asked for.
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (400, "invalid_request_error")
    assert record.requested_model == "chat-fast"


def test_out_of_range_parameter_raises_the_sdks_bad_request_error(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(
            model="chat-fast", messages=MESSAGES, temperature=3
        )

    assert caught.value.param == "temperature"
    assert upstream.requests == []


def test_invalid_embeddings_input_is_refused(gateway, upstream):
    response = _post(gateway, "/v1/embeddings", {"model": "embed-small", "input": ["a", 1]})

    assert assert_openai_error(response, 400)["param"] == "input"
    assert upstream.requests == []


def test_token_array_embeddings_input_is_forwarded(gateway, upstream):
    result = gateway.client().embeddings.create(model="embed-small", input=[[1, 2, 3], [4, 5]])

    assert len(result.data) == 2
    [sent] = upstream.received("/v1/embeddings")
    assert sent.body["input"] == [[1, 2, 3], [4, 5]]


def test_provider_specific_fields_are_forwarded_untouched(gateway, upstream):
    gateway.client().chat.completions.create(
        model="chat-fast",
        messages=MESSAGES,
        extra_body={"top_k": 40, "repetition_penalty": 1.1, "safe_prompt": True},
    )

    [sent] = upstream.received("/v1/chat/completions")
    assert (sent.body["top_k"], sent.body["repetition_penalty"]) == (40, 1.1)
    assert sent.body["safe_prompt"] is True


def test_tool_schema_with_credential_named_properties_is_forwarded(gateway, upstream):
    # A tool that takes an `api_key` argument is the caller's business, not an upstream override.
    gateway.client().chat.completions.create(
        model="chat-fast", messages=MESSAGES, tools=[LOGIN_TOOL]
    )

    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["tools"] == [LOGIN_TOOL]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"api_base": "http://127.0.0.1:9/v1"}, "api_base"),
        ({"api_key": "sk-someone-elses"}, "api_key"),
        ({"aws_secret_access_key": "x"}, "aws_secret_access_key"),
        ({"metadata": {"nested": [{"base_url": "http://evil"}]}}, "metadata.nested[0].base_url"),
        ({"extra_body": {"azure_endpoint": "https://evil"}}, "extra_body.azure_endpoint"),
    ],
)
def test_fields_choosing_the_upstream_are_refused(gateway, upstream, extra, param):
    body = {"model": "chat-fast", "messages": MESSAGES, **extra}
    response = _post(gateway, "/v1/chat/completions", body)

    error = assert_openai_error(response, 400, "forbidden_field")
    assert error["param"] == param
    assert param in error["message"]
    assert upstream.requests == []
