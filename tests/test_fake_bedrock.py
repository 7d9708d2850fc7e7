"""The fake Bedrock Runtime through botocore's own client, and its SigV4 and event-stream parts.

botocore signs every request (so the fake's signature check is proven against the signer
adapters will use), parses Converse answers and errors with the service model, and decodes
ConverseStream with its event-stream parser, checksums included.
"""

import base64
import json
from datetime import UTC, datetime, timedelta

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from tests.fakes import FakeBedrock, eventstream, rules, sigv4, wire

pytest_plugins = ("tests.fakes.fixtures",)

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}


def _client(fake, *, secret=None, key=None, token=None, region=None):
    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name=region or fake.region,
        endpoint_url=fake.url,
        aws_access_key_id=key or fake.credentials.access_key,
        aws_secret_access_key=secret or fake.credentials.secret_key,
        aws_session_token=token,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture
def client(fake_bedrock):
    return _client(fake_bedrock)


def _ask(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


def _stream(client, **kwargs) -> list[dict]:
    return list(client.converse_stream(modelId=MODEL, **kwargs)["stream"])


def test_converse_echoes_the_last_user_message_with_usage(client, fake_bedrock):
    answer = client.converse(
        modelId=MODEL, system=[{"text": "Be brief."}], messages=_ask("Hello there")
    )

    assert answer["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "Echo: Hello there"}],
    }
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"] == {"inputTokens": 4, "outputTokens": 3, "totalTokens": 7}
    received = fake_bedrock.last
    # botocore percent-encodes the model id in the path, and signs that encoded path.
    assert received.raw_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert received.model == MODEL and received.operation == "converse"
    assert received.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={fake_bedrock.credentials.access_key}/"
    )
    assert "/us-east-1/bedrock/aws4_request" in received.headers["authorization"]
    assert "x-amz-date" in received.headers


def test_converse_stream_sends_text_deltas_then_stop_and_metadata(client):
    events = _stream(client, messages=_ask("one two three"))

    names = [next(iter(e)) for e in events]
    assert wire.collapse(names) == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == "Echo: one two three" and names.count("contentBlockDelta") == 4
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 4


def test_every_stream_payload_carries_padding_like_bedrock(fake_bedrock):
    body = json.dumps({"messages": _ask("hi")}).encode()
    path = f"/model/{MODEL}/converse-stream"
    response = httpx.post(
        fake_bedrock.url + path, content=body, headers=fake_bedrock.signed_headers(path, body)
    )
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    messages = wire.parse_eventstream(response.content)
    assert all(h[":message-type"] == "event" and "p" in payload for h, payload in messages)


def test_a_weather_question_with_tools_streams_a_tool_use_in_json_deltas(client):
    events = _stream(client, messages=_ask("weather in Paris?"), toolConfig={"tools": [WEATHER]})

    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert starts == [
        {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tooluse_fake_000001", "name": "get_weather"}},
        }
    ]
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert len(pieces) >= 3 and json.loads("".join(pieces)) == {"city": "Paris"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"


def test_tool_round_trip_and_the_checks_on_tool_blocks(client):
    tools = {"tools": [WEATHER], "toolChoice": {"tool": {"name": "get_weather"}}}
    first = client.converse(modelId=MODEL, messages=_ask("hello"), toolConfig=tools)
    assert [list(b) for b in first["output"]["message"]["content"]] == [["toolUse"]]
    call = first["output"]["message"]["content"][0]["toolUse"]
    result = {"toolResult": {"toolUseId": call["toolUseId"], "content": [{"text": "Sunny"}]}}
    messages = [*_ask("hello"), first["output"]["message"], {"role": "user", "content": [result]}]

    answer = client.converse(modelId=MODEL, messages=messages, toolConfig={"tools": [WEATHER]})

    assert answer["output"]["message"]["content"] == [{"text": "Tool result: Sunny"}]
    with pytest.raises(ClientError, match="toolConfig field must be defined"):
        client.converse(modelId=MODEL, messages=messages)
    result["toolResult"]["toolUseId"] = "tooluse_unknown"
    with pytest.raises(ClientError, match="Expected toolResult blocks"):
        client.converse(modelId=MODEL, messages=messages, toolConfig={"tools": [WEATHER]})


def test_images_are_accepted_as_bytes_and_counted(client):
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG fake"}}}

    answer = client.converse(
        modelId=MODEL, messages=[{"role": "user", "content": [image, {"text": "what is it"}]}]
    )

    assert answer["usage"]["inputTokens"] == 3 + rules.IMAGE_TOKENS
    image["image"]["format"] = "bmp"
    with pytest.raises(ClientError, match="enum value set"):
        client.converse(modelId=MODEL, messages=[{"role": "user", "content": [image]}])


def test_a_cache_point_prefix_is_written_then_read(client):
    system = [{"text": "a long shared prompt"}, {"cachePoint": {"type": "default"}}]

    first = client.converse(modelId=MODEL, system=system, messages=_ask("hi"))["usage"]
    second = client.converse(modelId=MODEL, system=system, messages=_ask("yo"))["usage"]

    assert (first["cacheWriteInputTokens"], first["cacheReadInputTokens"]) == (4, 0)
    assert (second["cacheWriteInputTokens"], second["cacheReadInputTokens"]) == (0, 4)
    assert first["inputTokens"] == 1 and first["totalTokens"] == 1 + 4 + 2  # "Echo: hi"


def test_inference_limits_set_the_stop_reason(client):
    cut = client.converse(modelId=MODEL, messages=_ask("a b c"), inferenceConfig={"maxTokens": 2})
    stop = client.converse(
        modelId=MODEL, messages=_ask("a END b"), inferenceConfig={"stopSequences": ["END"]}
    )
    unsafe = client.converse(modelId=MODEL, messages=_ask(rules.UNSAFE_REPLY))

    assert (cut["output"]["message"]["content"][0]["text"], cut["stopReason"]) == (
        "Echo: a",
        "max_tokens",
    )
    assert stop["stopReason"] == "stop_sequence"
    assert unsafe["stopReason"] == "content_filtered"


@pytest.mark.parametrize(
    ("messages", "config", "message"),
    [
        ([{"role": "assistant", "content": [{"text": "x"}]}], {}, "must start with a user message"),
        (_ask("a") + _ask("b"), {}, "must alternate between user and assistant"),
        ([{"role": "user", "content": []}], {}, "is empty"),
        (_ask("a"), {"temperature": 1.5}, "inferenceConfig.temperature"),
    ],
)
def test_invalid_conversations_are_validation_exceptions(client, messages, config, message):
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=MODEL, messages=messages, inferenceConfig=config)
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationException" and message in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_embedding_model_cannot_converse(client):
    with pytest.raises(ClientError, match="doesn't support the model"):
        client.converse(modelId="amazon.titan-embed-text-v2:0", messages=_ask("hi"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "ThrottlingException"),
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (503, "ServiceUnavailableException"),
        (500, "InternalServerException"),
    ],
)
def test_injected_errors_are_exceptions_botocore_recognises(client, fake_bedrock, status, kind):
    fake_bedrock.fail(status, times=1)
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=MODEL, messages=_ask("hi"))
    response = caught.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        kind,
        status,
    )
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"].startswith(f"{kind}:")


def test_model_not_ready_is_a_429_with_its_own_name(client, fake_bedrock):
    fake_bedrock.fail(429, times=1, type="ModelNotReadyException", message="Model is not ready")
    with pytest.raises(client.exceptions.ModelNotReadyException):
        client.converse(modelId=MODEL, messages=_ask("hi"))


def test_an_exception_mid_stream_reaches_botocore(client, fake_bedrock):
    fake_bedrock.fail_mid_stream(
        after_chunks=2, times=1, type="throttlingException", message="Slow"
    )
    received = []
    with pytest.raises(EventStreamError) as caught:
        for event in client.converse_stream(modelId=MODEL, messages=_ask("a b c"))["stream"]:
            received.append(next(iter(event)))
    assert received == ["messageStart", "contentBlockDelta"]
    assert caught.value.response["Error"] == {"Code": "throttlingException", "Message": "Slow"}


def test_a_wrong_secret_is_refused_with_a_signature_mismatch(fake_bedrock):
    with pytest.raises(ClientError) as caught:
        _client(fake_bedrock, secret="not-the-secret").converse(modelId=MODEL, messages=_ask("hi"))
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["Error"]["Message"].startswith(
        "The request signature we calculated does not match"
    )


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"key": "AKIAUNKNOWN000000000"}, "UnrecognizedClientException", "security token"),
        ({"region": "eu-west-1"}, "InvalidSignatureException", "scoped to a valid region"),
        ({"token": "a-session-token"}, "UnrecognizedClientException", "security token"),
    ],
)
def test_credentials_that_do_not_belong_are_refused_like_aws(fake_bedrock, change, code, message):
    with pytest.raises(ClientError) as caught:
        _client(fake_bedrock, **change).converse(modelId=MODEL, messages=_ask("hi"))
    error = caught.value.response["Error"]
    assert error["Code"] == code and message in error["Message"]


def test_a_session_token_is_checked_when_the_fake_has_one():
    with FakeBedrock(session_token="token-1") as fake:
        assert _client(fake, token="token-1").converse(modelId=MODEL, messages=_ask("hi"))
        with pytest.raises(ClientError, match="security token"):
            _client(fake).converse(modelId=MODEL, messages=_ask("hi"))


def test_an_unsigned_request_is_missing_authentication(fake_bedrock):
    response = httpx.post(
        f"{fake_bedrock.url}/model/{MODEL}/converse", json={"messages": _ask("hi")}
    )
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:")
    assert response.json() == {"message": "Missing Authentication Token"}


def test_a_signature_from_ten_minutes_ago_has_expired(client, fake_bedrock):
    fake_bedrock.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(ClientError, match="Signature expired"):
        client.converse(modelId=MODEL, messages=_ask("hi"))


def test_signing_one_path_and_sending_another_is_refused(fake_bedrock):
    body = json.dumps({"messages": _ask("hi")}).encode()
    signed_for = f"{fake_bedrock.url}/model/{MODEL}/converse"  # ":" as is
    headers = sigv4.signed_headers(
        "POST", signed_for, body, fake_bedrock.credentials, region=fake_bedrock.region
    )
    sent_to = signed_for.replace(":0/", "%3A0/")  # what an encoding HTTP client would send

    assert httpx.post(signed_for, content=body, headers=headers).status_code == 200
    refused = httpx.post(sent_to, content=body, headers=headers)
    assert refused.status_code == 403
    assert refused.headers["x-amzn-errortype"].startswith("InvalidSignatureException:")


def test_titan_embeddings_through_invoke_model(client, fake_bedrock):
    body = json.dumps({"inputText": "hello world", "dimensions": 256})

    response = client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=body)

    answer = json.loads(response["body"].read())
    assert len(answer["embedding"]) == 256 and answer["inputTextTokenCount"] == 2
    assert answer["embeddingsByType"]["float"] == answer["embedding"]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    assert answer["embedding"] == rules.embedding("hello world", 256)


def test_cohere_embeddings_and_malformed_bodies(client):
    body = json.dumps({"texts": ["a", "b c"], "input_type": "search_document"})
    answer = json.loads(
        client.invoke_model(modelId="cohere.embed-english-v3", body=body)["body"].read()
    )
    assert answer["response_type"] == "embeddings_floats" and len(answer["embeddings"]) == 2

    extra = json.dumps({"inputText": "x", "input_type": "query"})
    with pytest.raises(ClientError, match=r"extraneous key \[input_type\]"):
        client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=extra)


def test_the_event_stream_encoder_is_read_back_by_botocore():
    payload = {"contentBlockIndex": 0, "delta": {"text": "héllo"}}
    raw = eventstream.event("contentBlockDelta", payload) + eventstream.exception(
        "throttlingException", {"message": "slow"}
    )

    buffer = EventStreamBuffer()
    for offset in range(0, len(raw), 7):  # fed in pieces, as reads would deliver it
        buffer.add_data(raw[offset : offset + 7])
    messages = list(buffer)

    assert [dict(m.headers) for m in messages] == [
        {
            ":event-type": "contentBlockDelta",
            ":content-type": "application/json",
            ":message-type": "event",
        },
        {
            ":exception-type": "throttlingException",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
    ]
    assert json.loads(messages[0].payload) == payload
    corrupted = bytearray(raw)
    corrupted[20] ^= 0xFF
    broken = EventStreamBuffer()
    broken.add_data(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        list(broken)


def test_a_stream_cut_into_small_writes_still_parses(client, fake_bedrock):
    fake_bedrock.write_size = 5
    events = _stream(client, messages=_ask("a b c"))
    assert "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    ) == ("Echo: a b c")


def test_image_bytes_travel_as_base64_in_the_json_body(client, fake_bedrock):
    image = {"image": {"format": "jpeg", "source": {"bytes": b"\xff\xd8raw"}}}
    client.converse(modelId=MODEL, messages=[{"role": "user", "content": [image, {"text": "x"}]}])
    sent = fake_bedrock.last.body["messages"][0]["content"][0]["image"]["source"]["bytes"]
    assert base64.b64decode(sent) == b"\xff\xd8raw"
