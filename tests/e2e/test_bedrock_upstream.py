"""OpenAI (and Anthropic) clients served by a Bedrock upstream: Converse requests, answers and
ConverseStream events translated, every request SigV4-signed (the fake checks the signature
with the secret), errors mapped, usage settled once from Bedrock's counts."""

import logging
from decimal import Decimal

import anthropic
import openai
import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team
from tests.fakes import rules
from tests.fakes.bedrock import ACCESS_KEY, SECRET_KEY

from .support import TEAM, assert_openai_error, only_usage_record, wait_for_usage_records

pytest_plugins = ("tests.fakes.fixtures",)

PRICE_IN, PRICE_OUT = Decimal("3"), Decimal("15")
# The Bedrock model id has a colon: the URL carries it percent-encoded, and so does the
# signature (the fake refuses a signature over another spelling of the path).
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"

CONFIG = """
providers:
  - name: aws
    kind: bedrock
    api_base: "{base}"
    allow_insecure_http: true
    region: us-east-1
    credentials: {{aws_access_key_id: "{key}", aws_secret_access_key: "{secret}"}}
models:
  - name: claude
    deployments:
      - {{provider: aws, model: "{model}", input_cost_per_mtok: 3, output_cost_per_mtok: 15}}
  - name: titan
    mode: embedding
    deployments:
      - {{provider: aws, model: "amazon.titan-embed-text-v2:0", input_cost_per_mtok: 0.02}}
  - name: cohere
    mode: embedding
    deployments:
      - {{provider: aws, model: "cohere.embed-english-v3", input_cost_per_mtok: 0.1}}
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
HELLO = [{"role": "user", "content": "Say hello."}]


def _load(fake, secret: str = SECRET_KEY) -> None:
    config_load(text=CONFIG.format(base=fake.url, key=ACCESS_KEY, secret=secret, model=MODEL_ID))
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()


@pytest.fixture
def bedrock(gateway, fake_bedrock):
    _load(fake_bedrock)
    return gateway.client()


def _cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * PRICE_IN + output_tokens * PRICE_OUT) / Decimal(1_000_000)


def test_a_completion_goes_through_converse_signed(gateway, fake_bedrock, bedrock):
    raw = bedrock.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *HELLO]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Echo: Say hello."
    assert completion.choices[0].finish_reason == "stop"
    sent = fake_bedrock.last
    assert sent.operation == "converse"
    assert sent.model == MODEL_ID
    assert sent.raw_path == "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.body["system"] == [{"text": "Be brief."}]
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (4, 3, False)
    assert record.cost_usd == _cost(4, 3)
    assert (record.provider_name, record.upstream_model) == ("aws", MODEL_ID)


def test_a_stream_is_decoded_from_event_stream_frames_with_usage(gateway, fake_bedrock, bedrock):
    raw = bedrock.chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Say hello."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert fake_bedrock.last.operation == "converse-stream"
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)
    assert record.stream is True


def test_a_stream_cut_into_small_writes_still_decodes(gateway, fake_bedrock, bedrock):
    fake_bedrock.write_size = 7  # frames split across reads

    chunks = list(bedrock.chat.completions.create(model="claude", messages=HELLO, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: Say hello."


def test_a_tool_call_comes_back_as_an_openai_tool_call(gateway, fake_bedrock, bedrock):
    completion = bedrock.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments.replace(" ", "") == '{"location":"Paris"}'

    answer = bedrock.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].message.content == rules.tool_result_reply("sunny")


def test_a_streamed_tool_call_arrives_as_argument_deltas(gateway, fake_bedrock, bedrock):
    stream = bedrock.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "weather in Paris please"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    names, arguments, reasons = [], [], []
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            if call.function.name:
                names.append(call.function.name)
            arguments.append(call.function.arguments or "")
        reasons.append(chunk.choices[0].finish_reason)

    assert names == ["get_weather"]
    assert "".join(arguments) == '{"location":"Paris"}'
    assert len([a for a in arguments if a]) > 1
    assert reasons[-1] == "tool_calls"


def test_a_filtered_answer_finishes_with_content_filter(gateway, fake_bedrock, bedrock):
    completion = bedrock.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": f"say {rules.UNSAFE_REPLY}"}]
    )

    assert completion.choices[0].finish_reason == "content_filter"


def test_throttling_is_a_429_with_retry_after(gateway, fake_bedrock, bedrock):
    fake_bedrock.fail(429, headers={"retry-after": "7"})

    with pytest.raises(openai.RateLimitError) as caught:
        bedrock.chat.completions.create(model="claude", messages=HELLO)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "7"
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_a_stream_throttled_before_its_first_event_is_a_429(gateway, fake_bedrock, bedrock):
    fake_bedrock.fail_mid_stream(after_chunks=0, type="throttlingException", message="slow")

    with pytest.raises(openai.RateLimitError) as caught:
        bedrock.chat.completions.create(model="claude", messages=HELLO, stream=True)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_a_validation_error_is_relayed_as_a_400(gateway, fake_bedrock, bedrock):
    fake_bedrock.fail(400, message="messages: something is wrong")

    with pytest.raises(openai.BadRequestError) as caught:
        bedrock.chat.completions.create(model="claude", messages=HELLO)

    error = assert_openai_error(caught.value.response, 400)
    assert error["message"] == "messages: something is wrong"


def test_an_exception_frame_mid_stream_ends_the_stream_with_an_error(
    gateway, fake_bedrock, bedrock
):
    fake_bedrock.fail_mid_stream(after_chunks=2, type="throttlingException", message="slow down")

    raw = bedrock.chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(raw.parse())

    assert "slow down" in str(caught.value)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_error")


def test_a_wrong_secret_is_a_502_that_echoes_nothing(gateway, fake_bedrock, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong/secret/key/000000000000000000000000"
    _load(fake_bedrock, secret=wrong)

    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "claude", "messages": HELLO},
            headers=gateway.auth(),
        )

    error = assert_openai_error(response, 502)
    assert "rejected the gateway's credentials" in error["message"]
    assert "signature" not in response.text.lower()
    for secret in (wrong, ACCESS_KEY):
        assert secret not in response.text and secret not in str(response.headers)
        assert secret not in caplog.text


def test_titan_embeddings_are_one_signed_call_per_input(gateway, fake_bedrock, bedrock):
    raw = bedrock.embeddings.with_raw_response.create(
        model="titan", input=["first text", "the second text"], encoding_format="float"
    )
    answer = raw.parse()

    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[0].embedding == rules.embedding("first text", 1024)
    assert answer.data[1].embedding == rules.embedding("the second text", 1024)
    assert answer.usage.prompt_tokens == 5
    sent = fake_bedrock.received(operation="invoke")
    assert sorted(r.body["inputText"] for r in sent) == ["first text", "the second text"]
    assert all(r.raw_path == "/model/amazon.titan-embed-text-v2:0/invoke" for r in sent)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.usage_estimated) == (5, False)


def test_cohere_embeddings_are_one_call_for_every_input(gateway, fake_bedrock, bedrock):
    raw = bedrock.embeddings.with_raw_response.create(
        model="cohere", input=["first text", "the second text"]
    )
    answer = raw.parse()  # base64 by the SDK's default, decoded back to floats

    assert len(answer.data) == 2
    assert answer.data[1].embedding == pytest.approx(rules.embedding("the second text", 1024))
    [sent] = fake_bedrock.received(operation="invoke")
    assert sent.body["texts"] == ["first text", "the second text"]
    assert sent.body["input_type"] == "search_document"
    # Cohere's body has no token count: Bedrock's x-amzn-bedrock-input-token-count has it.
    assert answer.usage.prompt_tokens == 5
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.usage_estimated) == (5, False)


def test_titan_embeddings_refuse_dimensions_it_lacks(gateway, fake_bedrock, bedrock):
    with pytest.raises(openai.BadRequestError) as caught:
        bedrock.embeddings.create(model="titan", input="text", dimensions=100)

    error = assert_openai_error(caught.value.response, 400, "unsupported_parameter")
    assert error["param"] == "dimensions"
    assert fake_bedrock.requests == []


def test_the_anthropic_sdk_is_served_by_bedrock(gateway, fake_bedrock, bedrock):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)

    message = client.messages.create(model="claude", max_tokens=100, messages=HELLO)
    with client.messages.stream(model="claude", max_tokens=100, messages=HELLO) as stream:
        streamed = "".join(stream.text_stream)

    assert message.content[0].text == "Echo: Say hello."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 3)
    assert streamed == "Echo: Say hello."
    assert [r.operation for r in fake_bedrock.requests] == ["converse", "converse-stream"]
    assert len(wait_for_usage_records(2)) == 2


def test_the_aws_secret_and_session_token_appear_nowhere(gateway, fake_bedrock, caplog):
    caplog.set_level(logging.DEBUG)
    token = "FwoGZXIvYXdzEFAKESESSIONTOKEN0123456789abcdef"
    fake_bedrock.credentials = type(fake_bedrock.credentials)(ACCESS_KEY, SECRET_KEY, token)
    try:
        config_load(
            text=CONFIG.format(
                base=fake_bedrock.url, key=ACCESS_KEY, secret=SECRET_KEY, model=MODEL_ID
            ).replace(
                f'aws_secret_access_key: "{SECRET_KEY}"',
                f'aws_secret_access_key: "{SECRET_KEY}", aws_session_token: "{token}"',
            )
        )
        Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
        routing_table_cache.invalidate()
        fake_bedrock.fail(400, message=f"bad request {SECRET_KEY} {token}", times=1)
        fake_bedrock.fail(403, message=f"denied {SECRET_KEY} {token}", times=1)
        seen = []
        with gateway.http() as http:
            for stream in (False, False, False, True):
                response = http.post(
                    "/v1/chat/completions",
                    json={"model": "claude", "messages": HELLO, "stream": stream},
                    headers=gateway.auth(),
                )
                seen.append((response.status_code, response.text, str(response.headers)))
        assert fake_bedrock.last.headers["x-amz-security-token"] == token
    finally:
        fake_bedrock.credentials = type(fake_bedrock.credentials)(ACCESS_KEY, SECRET_KEY)

    assert [status for status, _, _ in seen] == [400, 502, 200, 200]
    for _, body, headers in seen:
        for secret in (SECRET_KEY, token):
            assert secret not in body and secret not in headers
    assert SECRET_KEY not in caplog.text and token not in caplog.text
    for record in wait_for_usage_records(4):
        values = [str(getattr(record, f.attname)) for f in record._meta.concrete_fields]
        assert not any(SECRET_KEY in v or token in v for v in values)
