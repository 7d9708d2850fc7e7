"""The bedrock adapter on its own against the fake Bedrock: the AWS credential chain of the
environment, the region a request is signed for, and the SSE re-framing of event-stream frames
that the codec reads."""

import orjson
import pytest

from infra import http
from routing.credentials import Credentials
from routing.formats import StreamTranslator
from routing.providers import ProviderError
from routing.providers.bedrock import BedrockAdapter, _Frames, environment_credentials
from routing.selectors import Route
from tests.fakes import eventstream
from tests.fakes.bedrock import ACCESS_KEY, SECRET_KEY

pytest_plugins = ("tests.fakes.fixtures",)

HELLO = {"messages": [{"role": "user", "content": [{"text": "Say hello."}]}]}


def _route(fake, *, credentials=None, region="us-east-1") -> Route:
    return Route(
        deployment_id=1,
        model_name="claude",
        upstream_model="anthropic.claude-3-haiku-20240307-v1:0",
        mode="chat",
        provider_id=1,
        provider_name="aws",
        provider_kind="bedrock",
        api_base=fake.url,
        credentials=credentials or Credentials(),
        region=region,
    )


@pytest.fixture
def chain(monkeypatch):
    """The environment's AWS credentials, resolved afresh for the test and forgotten after."""
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    environment_credentials.cache_clear()
    yield
    environment_credentials.cache_clear()


async def test_a_provider_without_credentials_signs_with_the_environment_chain(fake_bedrock, chain):
    try:
        result = await BedrockAdapter().chat(_route(fake_bedrock), HELLO, {})
    finally:
        await http.aclose()

    assert orjson.loads(result.body)["output"]["message"]["content"] == [
        {"text": "Echo: Say hello."}
    ]
    assert f"Credential={ACCESS_KEY}/" in fake_bedrock.last.headers["authorization"]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2, 3)


async def test_stored_credentials_win_over_the_environment(fake_bedrock, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOTHERKEY00000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "other-secret")
    stored = Credentials({"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY})
    environment_credentials.cache_clear()
    try:
        result = await BedrockAdapter().chat(_route(fake_bedrock, credentials=stored), HELLO, {})
    finally:
        await http.aclose()
        environment_credentials.cache_clear()

    assert result.status == 200
    assert f"Credential={ACCESS_KEY}/" in fake_bedrock.last.headers["authorization"]


async def test_a_request_signed_for_another_region_is_refused_as_a_credential_failure(
    fake_bedrock, chain
):
    with pytest.raises(ProviderError) as caught:
        try:
            await BedrockAdapter().chat(_route(fake_bedrock, region="eu-west-1"), HELLO, {})
        finally:
            await http.aclose()

    assert (caught.value.status, caught.value.kind) == (502, "upstream_error")
    assert "rejected the gateway's credentials" in caught.value.message
    assert "/eu-west-1/bedrock/" in fake_bedrock.last.headers["authorization"]


def test_event_stream_frames_become_sse_events_the_codec_reads():
    frames = [
        eventstream.event("messageStart", {"role": "assistant"}),
        eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        eventstream.exception("throttlingException", {"message": "slow down"}),
    ]
    data = b"".join(frames)
    reader = _Frames()
    # Cut anywhere: a frame split across reads comes out whole once complete.
    sse = b"".join(reader.feed(data[i : i + 5]) for i in range(0, len(data), 5))

    assert sse.startswith(b'event: messageStart\ndata: {"role":"assistant"}\n\n')
    assert b"event: throttlingException\n" in sse
    translator = StreamTranslator("bedrock", "openai", include_usage=False)
    out = b"".join(translator.feed(event + b"\n\n") for event in sse.split(b"\n\n") if event)
    assert b'"content":"Hi"' in out
    assert b"slow down" in out
    assert translator.error == "rate_limit_error"
