"""The fake Gemini API over plain HTTP: answers, SSE streams, function calls, safety, errors."""

import base64
import json

import httpx
import pytest

from tests.fakes import rules, wire

pytest_plugins = ("tests.fakes.fixtures",)

MODEL = "gemini-2.0-flash"
WEATHER = {
    "name": "get_weather",
    "description": "Weather at a place",
    "parameters": {
        "type": "OBJECT",
        "properties": {"location": {"type": "STRING"}},
        "required": ["location"],
    },
}


def _call(fake, method: str, body: dict, *, model=MODEL, key=None, **params) -> httpx.Response:
    """POST to a method; `key=False` sends no key."""
    headers = {} if key is False else {"x-goog-api-key": key or fake.api_key}
    url = f"{fake.url}/v1beta/models/{model}:{method}"
    return httpx.post(url, json=body, headers=headers, params=params, timeout=10)


def _ask(text: str, **extra) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def _text(response: dict) -> str:
    parts = response["candidates"][0]["content"]["parts"]
    return "".join(p.get("text", "") for p in parts)


def test_generate_content_echoes_the_last_user_message_with_usage(fake_gemini):
    body = _ask("Hello there", systemInstruction={"parts": [{"text": "Be brief."}]})

    response = _call(fake_gemini, "generateContent", body)

    assert response.status_code == 200
    answer = response.json()
    candidate = answer["candidates"][0]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert _text(answer) == "Echo: Hello there"
    usage = answer["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"]) == (4, 3)
    assert usage["totalTokenCount"] == 7 and answer["modelVersion"] == MODEL
    assert fake_gemini.last.operation == "generateContent" and fake_gemini.last.model == MODEL


def test_the_key_may_come_as_a_query_parameter(fake_gemini):
    url = f"{fake_gemini.url}/v1beta/models/{MODEL}:generateContent"
    response = httpx.post(url, params={"key": fake_gemini.api_key}, json=_ask("hi"))
    assert response.status_code == 200
    assert "x-goog-api-key" not in fake_gemini.last.headers


def test_sse_stream_sends_text_in_several_chunks_ending_with_the_finish_reason(fake_gemini):
    response = _call(fake_gemini, "streamGenerateContent", _ask("one two three"), alt="sse")

    assert response.headers["content-type"].startswith("text/event-stream")
    assert b"\r\n\r\n" in response.content  # Google ends SSE events with CRLF blank lines
    chunks = [data for _, data in wire.parse_sse(response.content)]
    assert len(chunks) == 4
    assert "".join(_text(c) for c in chunks) == "Echo: one two three"
    assert [wire.gemini_event_kind(c) for c in chunks] == ["chunk"] * 3 + ["final"]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4


def test_without_alt_sse_the_stream_is_one_json_array(fake_gemini):
    response = _call(fake_gemini, "streamGenerateContent", _ask("one two"))
    chunks = response.json()
    assert isinstance(chunks, list) and "".join(_text(c) for c in chunks) == "Echo: one two"


def test_a_weather_question_with_tools_gets_a_whole_function_call(fake_gemini):
    body = _ask("What's the weather in Paris?", tools=[{"functionDeclarations": [WEATHER]}])

    answer = _call(fake_gemini, "generateContent", body).json()
    streamed = _call(fake_gemini, "streamGenerateContent", body, alt="sse")

    call = answer["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call == {"name": "get_weather", "args": {"location": "Paris"}}
    assert answer["candidates"][0]["finishReason"] == "STOP"
    chunks = [d for _, d in wire.parse_sse(streamed.content)]
    assert len(chunks) == 1  # Gemini does not stream function-call arguments
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"] == call


def test_function_calling_modes_choose_whether_and_which_function_is_called(fake_gemini):
    other = {**WEATHER, "name": "get_time"}
    tools = [{"functionDeclarations": [WEATHER, other]}]
    forced = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}
    never = {"functionCallingConfig": {"mode": "NONE"}}

    called = _call(fake_gemini, "generateContent", _ask("hi", tools=tools, toolConfig=forced))
    plain = _call(fake_gemini, "generateContent", _ask("weather", tools=tools, toolConfig=never))

    assert (
        called.json()["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_time"
    )
    assert _text(plain.json()) == "Echo: weather"


def test_a_function_response_is_answered_with_its_content(fake_gemini):
    call = {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}
    result = {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Paris?"}]},
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [result]},
        ],
        "tools": [{"functionDeclarations": [WEATHER]}],
    }

    answer = _call(fake_gemini, "generateContent", body).json()

    assert _text(answer).startswith("Tool result: ") and "sunny" in _text(answer)


def test_inline_images_are_counted_and_bad_base64_is_refused(fake_gemini):
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"png").decode()}}
    link = {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}}
    body = {"contents": [{"role": "user", "parts": [image, link, {"text": "What is it?"}]}]}

    usage = _call(fake_gemini, "generateContent", body).json()["usageMetadata"]

    assert usage["promptTokenCount"] == 3 + 2 * rules.IMAGE_TOKENS
    assert {"modality": "IMAGE", "tokenCount": 2 * rules.IMAGE_TOKENS} in usage[
        "promptTokensDetails"
    ]
    image["inlineData"]["data"] = "not base64!"
    refused = _call(fake_gemini, "generateContent", body)
    assert (
        refused.status_code == 400
        and "Base64 decoding failed" in refused.json()["error"]["message"]
    )


def test_safety_blocks_the_prompt_or_the_reply(fake_gemini):
    blocked = _call(fake_gemini, "generateContent", _ask(rules.UNSAFE_PROMPT)).json()
    assert "candidates" not in blocked
    assert blocked["promptFeedback"]["blockReason"] == "SAFETY"

    filtered = _call(fake_gemini, "generateContent", _ask(rules.UNSAFE_REPLY)).json()
    candidate = filtered["candidates"][0]
    assert candidate["finishReason"] == "SAFETY" and "content" not in candidate


def test_generation_config_limits_and_json_mode(fake_gemini):
    cut = _call(
        fake_gemini, "generateContent", _ask("a b c", generationConfig={"maxOutputTokens": 2})
    )
    assert (
        _text(cut.json()) == "Echo: a"
        and cut.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    )

    stopped = _call(
        fake_gemini, "generateContent", _ask("a END b", generationConfig={"stopSequences": ["END"]})
    )
    assert (
        _text(stopped.json()) == "Echo: a "
        and stopped.json()["candidates"][0]["finishReason"] == "STOP"
    )

    config = {"responseMimeType": "application/json"}
    as_json = _call(fake_gemini, "generateContent", _ask("hi", generationConfig=config))
    assert json.loads(_text(as_json.json())) == {"echo": "hi"}


def test_snake_case_names_are_accepted_and_unknown_names_refused(fake_gemini):
    snake = {
        "contents": [{"role": "user", "parts": [{"text": "a b c"}]}],
        "system_instruction": {"parts": [{"text": "x"}]},
        "generation_config": {"max_output_tokens": 2},
    }
    assert _text(_call(fake_gemini, "generateContent", snake).json()) == "Echo: a"

    top = _call(fake_gemini, "generateContent", _ask("hi", max_tokens=5))
    nested = _call(fake_gemini, "generateContent", _ask("hi", generationConfig={"max_tokens": 5}))
    assert top.status_code == nested.status_code == 400
    assert top.json()["error"]["message"] == (
        'Invalid JSON payload received. Unknown name "max_tokens": Cannot find field.'
    )
    assert "at 'generation_config'" in nested.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "valid role: user, model",
        ),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
    ],
)
def test_malformed_contents_are_invalid_argument(fake_gemini, body, message):
    response = _call(fake_gemini, "generateContent", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT") and message in error[
        "message"
    ]


def test_a_missing_key_is_permission_denied_and_a_wrong_one_api_key_invalid(fake_gemini):
    missing = _call(fake_gemini, "generateContent", _ask("hi"), key=False)
    wrong = _call(fake_gemini, "generateContent", _ask("hi"), key="AIza-wrong")

    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert wrong.status_code == 400
    error = wrong.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_rate_limits_carry_retry_info_and_overload_is_unavailable(fake_gemini):
    fake_gemini.fail(429, times=1, retry_delay="20s")
    fake_gemini.fail(503, times=1)

    limited = _call(fake_gemini, "generateContent", _ask("hi"))
    overloaded = _call(fake_gemini, "generateContent", _ask("hi"))

    assert limited.status_code == 429 and "retry-after" not in limited.headers
    error = limited.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}]
    assert overloaded.status_code == 503 and overloaded.json()["error"]["status"] == "UNAVAILABLE"


def test_an_error_mid_stream_is_an_error_object_in_a_data_event(fake_gemini):
    fake_gemini.fail_mid_stream(after_chunks=1, times=1)

    response = _call(fake_gemini, "streamGenerateContent", _ask("a b c"), alt="sse")

    events = [d for _, d in wire.parse_sse(response.content)]
    assert _text(events[0]) == "Echo: " and events[1]["error"]["status"] == "INTERNAL"
    assert len(events) == 2


def test_embeddings_are_deterministic_and_sized_as_asked(fake_gemini):
    body = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 16}

    one = _call(fake_gemini, "embedContent", body, model="text-embedding-004").json()
    two = _call(fake_gemini, "embedContent", body, model="text-embedding-004").json()

    assert one == two and len(one["embedding"]["values"]) == 16
    default = _call(
        fake_gemini, "embedContent", {"content": body["content"]}, model="text-embedding-004"
    )
    assert len(default.json()["embedding"]["values"]) == 768


def test_batch_embeddings_answer_each_request_for_the_same_model_only(fake_gemini):
    item = {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}}

    batch = _call(
        fake_gemini, "batchEmbedContents", {"requests": [item, item]}, model="text-embedding-004"
    )
    mixed = _call(
        fake_gemini,
        "batchEmbedContents",
        {"requests": [{**item, "model": "models/other"}]},
        model="text-embedding-004",
    )

    assert len(batch.json()["embeddings"]) == 2
    assert mixed.status_code == 400


def test_count_tokens_matches_the_prompt_token_count(fake_gemini):
    body = _ask("one two three", systemInstruction={"parts": [{"text": "four"}]})
    counted = _call(fake_gemini, "countTokens", body).json()
    billed = _call(fake_gemini, "generateContent", body).json()
    assert counted["totalTokens"] == billed["usageMetadata"]["promptTokenCount"] == 4


def test_an_unlisted_model_is_not_found_when_the_fake_lists_models():
    from tests.fakes import FakeGemini

    with FakeGemini(models=["gemini-known"]) as fake:
        response = _call(fake, "generateContent", _ask("hi"), model="gemini-other")
        listed = httpx.get(f"{fake.url}/v1beta/models", headers={"x-goog-api-key": fake.api_key})
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
    assert listed.json()["models"] == [{"name": "models/gemini-known"}]
