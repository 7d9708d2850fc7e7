"""The fakes against the providers' own published examples (tests/fakes/golden/).

Each golden file holds a request and the response the provider's documentation shows for it
(`_source` names the page). Sent to the fake, the same request must come back in the same
shape: the same status, every documented key with a value of the same JSON type, the
documented headers, and for streams the same order of event kinds. The golden examples are
also checked against the official SDKs' schemas (anthropic's pydantic types, botocore's
Bedrock service model), so a mistyped golden file cannot vouch for a wrong fake.
"""

import json
from pathlib import Path

import anthropic.types
import httpx
import pytest
from botocore import parsers
from botocore.eventstream import EventStream
from botocore.session import get_session
from pydantic import TypeAdapter

from tests.fakes import eventstream, sigv4, wire

pytest_plugins = ("tests.fakes.fixtures",)

GOLDEN = Path(__file__).parent / "fakes" / "golden"
CASES = sorted(
    (provider.name, path.stem) for provider in GOLDEN.iterdir() for path in provider.glob("*.json")
)


def _load(provider: str, name: str) -> dict:
    return json.loads((GOLDEN / provider / f"{name}.json").read_text())


def _send(provider: str, fake, golden: dict) -> httpx.Response:
    request = golden["request"]
    wrong = golden.get("credential") == "wrong"
    body = json.dumps(request["body"]).encode()
    headers = dict(request["headers"])
    url = fake.url + request["path"]
    if provider == "anthropic":
        headers["x-api-key"] = "sk-ant-wrong" if wrong else fake.api_key
    elif provider == "gemini":
        headers["x-goog-api-key"] = "AIza-wrong" if wrong else fake.api_key
    else:
        credentials = fake.credentials
        if wrong:
            credentials = sigv4.AwsCredentials(credentials.access_key, "not-the-secret")
        headers = sigv4.signed_headers("POST", url, body, credentials, region=fake.region)
    if "fault" in golden:
        fake.fail(**golden["fault"], times=1)
    return httpx.post(url, content=body, headers=headers, params=request.get("query"), timeout=10)


def _events(provider: str, raw: bytes) -> list[tuple[str, dict]]:
    """(kind, comparable object) per event."""
    if provider == "anthropic":
        return [(wire.anthropic_event_kind(n, d), d) for n, d in wire.parse_sse(raw)]
    if provider == "gemini":
        return [(wire.gemini_event_kind(d), d) for _, d in wire.parse_sse(raw)]
    return [
        (wire.bedrock_event_kind(h, p), {"headers": h, "payload": p})
        for h, p in wire.parse_eventstream(raw)
    ]


def _golden_events(provider: str, golden: dict) -> list[tuple[str, dict]]:
    events = golden["response"]["events"]
    if provider == "anthropic":
        return [(wire.anthropic_event_kind(e["event"], e["data"]), e["data"]) for e in events]
    if provider == "gemini":
        return [(wire.gemini_event_kind(e["data"]), e["data"]) for e in events]
    return [(wire.bedrock_event_kind(e["headers"], e["payload"]), e) for e in events]


@pytest.fixture
def fakes(fake_anthropic, fake_gemini, fake_bedrock):
    return {"anthropic": fake_anthropic, "gemini": fake_gemini, "bedrock": fake_bedrock}


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_fake_answers_the_documented_request_in_the_documented_shape(fakes, provider, name):
    golden = _load(provider, name)
    expected = golden["response"]

    response = _send(provider, fakes[provider], golden)

    assert response.status_code == expected["status"], response.text
    for header in expected.get("headers", []):
        assert header in response.headers, f"{header} missing: {dict(response.headers)}"
    if "events" not in expected:
        assert wire.shape_mismatches(expected["body"], response.json()) == []
        return
    assert response.headers["content-type"].startswith(expected["content_type"])
    got = _events(provider, response.content)
    documented = _golden_events(provider, golden)
    assert wire.collapse([k for k, _ in got]) == wire.collapse([k for k, _ in documented])
    for kind, example in documented:
        first = next(event for k, event in got if k == kind)
        assert wire.shape_mismatches(example, first, kind) == []


def test_every_provider_has_golden_streams_and_errors():
    for provider in ("anthropic", "gemini", "bedrock"):
        goldens = [_load(provider, path.stem) for path in (GOLDEN / provider).glob("*.json")]
        assert all(g["_source"].startswith("https://") for g in goldens)
        assert any("events" in g["response"] for g in goldens), provider
        assert any(g["response"]["status"] >= 400 for g in goldens), provider


@pytest.mark.parametrize("name", [n for p, n in CASES if p == "anthropic"])
def test_anthropic_golden_examples_fit_the_sdk_types(name):
    golden = _load("anthropic", name)
    response = golden["response"]
    if "events" in response:
        adapter = TypeAdapter(anthropic.types.RawMessageStreamEvent)
        for event in response["events"]:
            if event["event"] != "ping":
                assert adapter.validate_python(event["data"]).type == event["event"]
    elif response["status"] >= 400:
        anthropic.types.ErrorResponse.model_validate(response["body"])
    elif name == "count_tokens":
        anthropic.types.MessageTokensCount.model_validate(response["body"])
    elif "usage" in response["body"]:  # the tool-use page shows a partial message
        anthropic.types.Message.model_validate(response["body"])


def _bedrock_operation(path: str):
    name = {"converse": "Converse", "converse-stream": "ConverseStream", "invoke": "InvokeModel"}
    service = get_session().get_service_model("bedrock-runtime")
    return service.operation_model(name[path.rsplit("/", 1)[1]])


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self):
        yield self._data


@pytest.mark.parametrize("name", [n for p, n in CASES if p == "bedrock"])
def test_bedrock_golden_examples_parse_with_the_botocore_service_model(name):
    golden = _load("bedrock", name)
    response = golden["response"]
    operation = _bedrock_operation(golden["request"]["path"])
    if "events" in response:
        raw = b"".join(
            eventstream.encode_message(e["headers"], json.dumps(e["payload"]).encode())
            for e in response["events"]
        )
        shape = operation.output_shape.members["stream"]
        events = list(EventStream(_Raw(raw), shape, parsers.EventStreamJSONParser(), "x"))
        assert [next(iter(e)) for e in events] == [
            e["headers"][":event-type"] for e in response["events"]
        ]
        return
    if operation.name == "InvokeModel":
        return  # the body is an opaque blob to botocore
    headers = {"x-amzn-errortype": "ThrottlingException:http://internal/"}
    parsed = parsers.create_parser("rest-json").parse(
        {
            "status_code": response["status"],
            "headers": headers if response["status"] >= 400 else {},
            "body": json.dumps(response["body"]).encode(),
        },
        operation.output_shape,
    )
    if response["status"] >= 400:
        assert parsed["Error"]["Message"] == response["body"]["message"]
    else:
        assert (
            parsed["output"]["message"]["content"]
            == response["body"]["output"]["message"]["content"]
        )
        assert parsed["usage"]["totalTokens"] == response["body"]["usage"]["totalTokens"]
