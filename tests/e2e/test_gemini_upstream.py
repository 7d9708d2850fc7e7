"""OpenAI (and Anthropic) clients served by a Gemini upstream: requests, answers and streams
translated (routing.formats.gemini), Gemini's errors mapped by their status names, embeddings
through batchEmbedContents, usage settled once from Gemini's usageMetadata."""

import base64
import logging
import struct
from decimal import Decimal

import anthropic
import openai
import pytest

from gateway.config import config_load
from routing.selectors import routing_table_cache
from tenants.models import Team
from tests.fakes import rules
from tests.fakes.gemini import API_KEY as GEMINI_KEY

from .support import TEAM, assert_openai_error, only_usage_record, wait_for_usage_records

pytest_plugins = ("tests.fakes.fixtures",)

# (input, output) USD per 1M tokens of the chat deployments below.
PRICE_IN, PRICE_OUT = Decimal("0.3"), Decimal("2.5")
# A key Gemini refuses (400 INVALID_ARGUMENT, reason API_KEY_INVALID): long and unmistakable.
WRONG_KEY = "AIza-canary-wrong-gemini-key-5c1e9b7d"

CONFIG = """
providers:
  - {{name: gemini, kind: gemini, api_base: "{base}", api_key: "{key}"}}
  - {{name: gemini-backup, kind: gemini, api_base: "{base}", api_key: "{key}"}}
  - {{name: gemini-wrong-key, kind: gemini, api_base: "{base}", api_key: "{wrong}"}}
models:
  - name: flash
    deployments:
      - {{provider: gemini, model: gemini-flash-fake,
         input_cost_per_mtok: 0.3, output_cost_per_mtok: 2.5}}
  - name: flash-ha
    deployments:
      - {{provider: gemini, model: gemini-primary,
         input_cost_per_mtok: 0.3, output_cost_per_mtok: 2.5}}
      - {{provider: gemini-backup, model: gemini-backup,
         input_cost_per_mtok: 0.5, output_cost_per_mtok: 3}}
  - name: flash-wrong-key
    deployments:
      - {{provider: gemini-wrong-key, model: gemini-flash-fake}}
  - name: gemini-embed
    mode: embedding
    deployments:
      - {{provider: gemini, model: text-embedding-fake, input_cost_per_mtok: 0.15}}
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
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
GENERATE = "/v1beta/models/gemini-flash-fake:generateContent"
STREAM = "/v1beta/models/gemini-flash-fake:streamGenerateContent"


@pytest.fixture
def gemini(gateway, fake_gemini):
    config_load(text=CONFIG.format(base=fake_gemini.url, key=GEMINI_KEY, wrong=WRONG_KEY))
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    return gateway.client()


def _cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * PRICE_IN + output_tokens * PRICE_OUT) / Decimal(1_000_000)


# --- chat -----------------------------------------------------------------------------------------


def test_a_completion_is_translated_both_ways(gateway, fake_gemini, gemini):
    raw = gemini.chat.completions.with_raw_response.create(
        model="flash",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=50,
        temperature=0.5,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Echo: Say hello."
    assert completion.choices[0].finish_reason == "stop"
    sent = fake_gemini.last
    assert sent.path == GENERATE
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert "key" not in sent.query  # the key travels in the header only, never in the URL
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Say hello."}]}]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.5}
    # Input: "Be brief." + "Say hello." (4 words); output: "Echo: Say hello." (3 words).
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == _cost(4, 3)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (4, 3, False)
    assert record.cost_usd == _cost(4, 3)
    assert (record.provider_name, record.upstream_model) == ("gemini", "gemini-flash-fake")


def test_a_stream_is_translated_into_openai_chunks_with_the_usage_chunk(
    gateway, fake_gemini, gemini
):
    raw = gemini.chat.completions.with_raw_response.create(
        model="flash", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Say hello."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    sent = fake_gemini.last
    assert (sent.path, sent.query) == (STREAM, {"alt": "sse"})
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)
    assert record.stream is True
    assert record.cost_usd == _cost(2, 3)


def test_a_stream_without_include_usage_has_no_usage_chunk_but_is_settled(
    gateway, fake_gemini, gemini
):
    raw = gemini.chat.completions.with_raw_response.create(
        model="flash", messages=HELLO, stream=True
    )
    chunks = list(raw.parse())

    assert chunks and all(c.choices for c in chunks)
    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (2, 3, False)


def test_a_tool_call_comes_back_as_an_openai_tool_call_and_its_result_goes_back(
    gateway, fake_gemini, gemini
):
    completion = gemini.chat.completions.create(
        model="flash", messages=WEATHER, tools=[WEATHER_TOOL]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments.replace(" ", "") == '{"location":"Paris"}'
    [declaration] = fake_gemini.last.body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert declaration["parametersJsonSchema"]["required"] == ["location"]

    # The result goes back as an OpenAI tool message, a functionResponse (named) upstream.
    answer = gemini.chat.completions.create(
        model="flash",
        messages=[
            *WEATHER,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].message.content.startswith("Tool result: ")
    assert "sunny" in answer.choices[0].message.content
    result = fake_gemini.last.body["contents"][-1]["parts"][0]["functionResponse"]
    assert result == {"name": "get_weather", "response": {"content": "sunny"}}
    wait_for_usage_records(2)


def test_a_streamed_tool_call_arrives_with_its_whole_arguments_in_one_delta(
    gateway, fake_gemini, gemini
):
    raw = gemini.chat.completions.with_raw_response.create(
        model="flash", messages=WEATHER, tools=[WEATHER_TOOL], stream=True
    )
    names, arguments, reasons = [], [], []
    for chunk in raw.parse():
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            if call.function.name:
                names.append(call.function.name)
            arguments.append(call.function.arguments or "")
        reasons.append(chunk.choices[0].finish_reason)

    assert names == ["get_weather"]
    # Gemini sends a call whole: one delta holds all of its arguments.
    assert [a for a in arguments if a] == ['{"location":"Paris"}']
    assert reasons[-1] == "tool_calls"
    record = only_usage_record(raw.headers["x-request-id"])
    # "What is the weather in Paris?" (6 words) + one tool; the arguments are one "word".
    assert (record.input_tokens, record.output_tokens) == (6 + rules.TOOL_TOKENS, 1)


def test_a_safety_block_of_the_answer_is_finish_reason_content_filter(gateway, fake_gemini, gemini):
    messages = [{"role": "user", "content": f"Tell me {rules.UNSAFE_REPLY}"}]

    completion = gemini.chat.completions.create(model="flash", messages=messages)
    chunks = list(gemini.chat.completions.create(model="flash", messages=messages, stream=True))

    assert completion.choices[0].finish_reason == "content_filter"
    assert not completion.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    wait_for_usage_records(2)


def test_a_blocked_prompt_is_finish_reason_content_filter(gateway, fake_gemini, gemini):
    messages = [{"role": "user", "content": f"Tell me {rules.UNSAFE_PROMPT}"}]

    completion = gemini.chat.completions.create(model="flash", messages=messages)

    assert completion.choices[0].finish_reason == "content_filter"
    assert not completion.choices[0].message.content


def test_json_mode_images_and_stop_sequences_are_translated(gateway, fake_gemini, gemini):
    pixel = base64.b64encode(b"\x89PNG fake image bytes").decode()
    content = [
        {"type": "text", "text": "Describe these"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    completion = gemini.chat.completions.create(
        model="flash",
        messages=[{"role": "user", "content": content}],
        response_format={"type": "json_object"},
        stop=["END"],
        seed=7,
    )

    assert completion.choices[0].message.content == '{"echo": "Describe these"}'
    sent = fake_gemini.last.body
    assert sent["contents"][0]["parts"] == [
        {"text": "Describe these"},
        {"inlineData": {"mimeType": "image/png", "data": pixel}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]
    config = sent["generationConfig"]
    assert (config["responseMimeType"], config["stopSequences"], config["seed"]) == (
        "application/json",
        ["END"],
        7,
    )
    # Two words of text and two images.
    assert completion.usage.prompt_tokens == 2 + 2 * rules.IMAGE_TOKENS


def test_a_parameter_gemini_cannot_honour_is_refused_before_any_call(gateway, fake_gemini, gemini):
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "flash", "messages": HELLO, "n": 2},
            headers=gateway.auth(),
        )

    error = assert_openai_error(response, 400, "unsupported_parameter")
    assert error["param"] == "n"
    assert fake_gemini.requests == []
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (400, "unsupported_parameter")


def test_a_dropped_parameter_is_listed_in_a_header(gateway, fake_gemini, gemini):
    raw = gemini.chat.completions.with_raw_response.create(
        model="flash", messages=WEATHER, tools=[WEATHER_TOOL], parallel_tool_calls=False
    )

    assert raw.parse().choices[0].finish_reason == "tool_calls"
    assert raw.headers["x-gateway-dropped-params"] == "parallel_tool_calls"


# --- errors ---------------------------------------------------------------------------------------


def test_gemini_quota_exhaustion_is_a_429_with_retry_after_from_its_retry_info(
    gateway, fake_gemini, gemini
):
    fake_gemini.fail(429, retry_delay="6.5s")

    with pytest.raises(openai.RateLimitError) as caught:
        gemini.chat.completions.create(model="flash", messages=HELLO)

    response = caught.value.response
    assert_openai_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "7"  # rounded up: never earlier than asked
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (429, "upstream_rate_limited")


def test_a_bad_gemini_key_is_a_502_that_does_not_echo_it(gateway, fake_gemini, gemini):
    with pytest.raises(openai.APIStatusError) as caught:
        gemini.chat.completions.create(model="flash-wrong-key", messages=HELLO)

    response = caught.value.response
    error = assert_openai_error(response, 502, "upstream_error")
    assert "rejected the gateway's credentials" in error["message"]
    assert "API key not valid" not in response.text  # Gemini's own words are not relayed
    assert WRONG_KEY not in response.text and WRONG_KEY not in str(response.headers)
    assert fake_gemini.last.headers["x-goog-api-key"] == WRONG_KEY
    assert len(fake_gemini.requests) == 1
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_error")


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (403, 502, "upstream_error"),  # PERMISSION_DENIED: the gateway's credential
        (404, 502, "upstream_error"),  # NOT_FOUND: the deployment's model id is wrong
        (500, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
        (504, 504, "upstream_timeout"),  # DEADLINE_EXCEEDED
    ],
    ids=["permission-denied", "not-found", "internal", "unavailable", "deadline-exceeded"],
)
def test_gemini_error_statuses_map_to_gateway_statuses(
    gateway, fake_gemini, gemini, status, expected, code
):
    fake_gemini.fail(status, message=f"upstream detail {GEMINI_KEY}")

    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "flash", "messages": HELLO},
            headers=gateway.auth(),
        )

    error = assert_openai_error(response, expected, code)
    assert "upstream detail" not in error["message"]  # not the caller's error: not relayed
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (expected, code)


def test_an_invalid_argument_is_relayed_as_the_callers_400(gateway, fake_gemini, gemini):
    fake_gemini.fail(400, message="Invalid value at 'generation_config.top_k'")

    with pytest.raises(openai.BadRequestError) as caught:
        gemini.chat.completions.create(model="flash-ha", messages=HELLO)

    error = assert_openai_error(caught.value.response, 400)
    assert error["message"] == "Invalid value at 'generation_config.top_k'"
    assert len(fake_gemini.requests) == 1  # the caller's mistake: not tried elsewhere


def test_an_unavailable_gemini_falls_back_to_the_next_deployment(gateway, fake_gemini, gemini):
    fake_gemini.fail(503, model="gemini-primary")

    raw = gemini.chat.completions.with_raw_response.create(
        model="flash-ha", messages=HELLO, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)

    assert text == "Echo: Say hello."
    assert raw.headers["x-gateway-deployment"] == "gemini-backup/gemini-backup"
    # Unavailable is worth one retry of the same deployment (with backoff), then the next one.
    sent = [r.model for r in fake_gemini.requests]
    assert sent == ["gemini-primary", "gemini-primary", "gemini-backup"]
    [record] = wait_for_usage_records(1)
    assert (record.attempts, record.upstream_model) == (3, "gemini-backup")


def test_an_error_event_mid_stream_reaches_the_client_and_the_usage_row(
    gateway, fake_gemini, gemini
):
    fake_gemini.fail_mid_stream(after_chunks=1)

    raw = gemini.chat.completions.with_raw_response.create(
        model="flash", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError):
        list(raw.parse())

    record = only_usage_record(raw.headers["x-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_error")


# --- embeddings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_embeddings_go_through_batch_embed_contents(gateway, fake_gemini, gemini, encoding_format):
    inputs = ["first text", "the second text"]
    with gateway.http() as http:
        response = http.post(
            "/v1/embeddings",
            json={"model": "gemini-embed", "input": inputs, "encoding_format": encoding_format},
            headers=gateway.auth(),
        )

    assert response.status_code == 200, response.text
    body = response.json()
    vectors = [item["embedding"] for item in body["data"]]
    if encoding_format == "base64":
        vectors = [
            list(struct.unpack(f"<{len(raw) // 4}f", raw))
            for raw in (base64.b64decode(v) for v in vectors)
        ]
    for vector, text in zip(vectors, inputs, strict=True):
        assert vector == pytest.approx(rules.embedding(text, 768), rel=1e-5, abs=1e-6)
    sent = fake_gemini.last
    assert sent.path == "/v1beta/models/text-embedding-fake:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in sent.body["requests"]] == inputs
    # Gemini counts no tokens for embeddings: estimated (about 4 characters a token), flagged.
    assert body["usage"]["prompt_tokens"] == 3 + 4
    record = only_usage_record(response.headers["x-request-id"])
    assert (record.input_tokens, record.usage_estimated) == (7, True)


def test_the_openai_sdk_gets_gemini_embeddings(gateway, fake_gemini, gemini):
    # The SDK asks for base64 by default and decodes it.
    result = gemini.embeddings.create(model="gemini-embed", input="hello there", dimensions=8)

    assert result.data[0].embedding == pytest.approx(
        rules.embedding("hello there", 8), rel=1e-5, abs=1e-6
    )
    assert fake_gemini.last.body["requests"][0]["outputDimensionality"] == 8
    wait_for_usage_records(1)


def test_an_embeddings_parameter_gemini_lacks_is_dropped_and_listed(gateway, fake_gemini, gemini):
    raw = gemini.embeddings.with_raw_response.create(
        model="gemini-embed", input="hello", user="end-user-7"
    )

    assert len(raw.parse().data) == 1
    assert raw.headers["x-gateway-dropped-params"] == "user"
    assert "user" not in fake_gemini.last.body["requests"][0]
    wait_for_usage_records(1)


def test_token_array_embedding_input_is_refused_naming_input(gateway, fake_gemini, gemini):
    with gateway.http() as http:
        response = http.post(
            "/v1/embeddings",
            json={"model": "gemini-embed", "input": [[1, 2, 3]]},
            headers=gateway.auth(),
        )

    error = assert_openai_error(response, 400, "unsupported_parameter")
    assert error["param"] == "input"
    assert fake_gemini.requests == []


# --- the Anthropic dialect --------------------------------------------------------------------


def test_the_anthropic_sdk_is_served_by_a_gemini_upstream(gateway, fake_gemini, gemini):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)

    raw = client.messages.with_raw_response.create(
        model="flash", max_tokens=100, system="Be brief.", messages=HELLO
    )
    message = raw.parse()
    with client.messages.stream(model="flash", max_tokens=100, messages=HELLO) as stream:
        streamed = stream.get_final_message()

    assert message.content[0].text == "Echo: Say hello."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert streamed.content[0].text == "Echo: Say hello."
    assert fake_gemini.received(STREAM)[0].body["generationConfig"]["maxOutputTokens"] == 100
    records = wait_for_usage_records(2)
    assert sorted((r.input_tokens, r.output_tokens) for r in records) == [(2, 3), (4, 3)]


# --- the canary -----------------------------------------------------------------------------------


def test_the_gemini_key_appears_in_no_log_error_header_or_usage_row(
    gateway, fake_gemini, gemini, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_gemini.fail(400, message=f"bad request from {GEMINI_KEY}", times=1)
    fake_gemini.fail(403, message=f"key {GEMINI_KEY} is not allowed", times=1)
    # No delay asked: a longer one would cool the deployment, and the next requests would be
    # answered by the gateway without reaching the upstream.
    fake_gemini.fail(429, message=f"quota of {GEMINI_KEY}", retry_delay="0s", times=1)
    seen = []
    with gateway.http() as http:
        for stream in (False, False, False, False, True):
            response = http.post(
                "/v1/chat/completions",
                json={"model": "flash", "messages": HELLO, "stream": stream},
                headers=gateway.auth(),
            )
            seen.append((response.status_code, response.text, str(response.headers)))
        response = http.post(
            "/v1/embeddings",
            json={"model": "gemini-embed", "input": "hi"},
            headers=gateway.auth(),
        )
        seen.append((response.status_code, response.text, str(response.headers)))

    assert [status for status, _, _ in seen] == [400, 502, 429, 200, 200, 200]
    assert "bad request from" in seen[0][1]  # relayed, with the key redacted
    for _, body, headers in seen:
        assert GEMINI_KEY not in body and GEMINI_KEY not in headers
    assert all("key" not in r.query for r in fake_gemini.requests)
    assert GEMINI_KEY not in caplog.text
    assert all(GEMINI_KEY not in str(vars(record)) for record in caplog.records)
    for record in wait_for_usage_records(6):
        values = [str(getattr(record, f.attname)) for f in record._meta.concrete_fields]
        assert not any(GEMINI_KEY in value for value in values)
