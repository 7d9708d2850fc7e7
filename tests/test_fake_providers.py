"""What the three provider fakes share: recording and the faults tests program.

Each test runs against the Anthropic, Gemini and Bedrock fakes alike, through one small client
per provider that speaks its format (its credential, its stream framing).
"""

import json
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.fakes import wire

pytest_plugins = ("tests.fakes.fixtures",)

JSON = {"content-type": "application/json"}


@dataclass
class Speaker:
    """Sends one chat request in a provider's format and reads its answer."""

    name: str
    fake: object

    def request(
        self, text: str, *, stream: bool, model: str = "fake-model"
    ) -> tuple[str, dict, bytes]:
        if self.name == "anthropic":
            body = {
                "model": model,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": text}],
            }
            body["stream"] = stream
            headers = {"x-api-key": self.fake.api_key, "anthropic-version": "2023-06-01", **JSON}
            return f"{self.fake.url}/v1/messages", headers, json.dumps(body).encode()
        if self.name == "gemini":
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
            url = f"{self.fake.url}/v1beta/models/{model}:{method}"
            return url, {"x-goog-api-key": self.fake.api_key, **JSON}, json.dumps(body).encode()
        path = f"/model/{model}/{'converse-stream' if stream else 'converse'}"
        body = json.dumps({"messages": [{"role": "user", "content": [{"text": text}]}]}).encode()
        return self.fake.url + path, self.fake.signed_headers(path, body), body

    def send(self, text: str = "a b c", *, stream: bool = False, timeout: float = 10, **kw):
        url, headers, body = self.request(text, stream=stream, **kw)
        return httpx.post(url, content=body, headers=headers, timeout=timeout)

    def events(self, raw: bytes) -> list:
        if self.name == "bedrock":
            return wire.parse_eventstream(raw)
        return wire.parse_sse(raw)

    def text(self, response: httpx.Response) -> str:
        body = response.json()
        if self.name == "anthropic":
            return body["content"][0]["text"]
        if self.name == "gemini":
            return body["candidates"][0]["content"]["parts"][0]["text"]
        return body["output"]["message"]["content"][0]["text"]


@pytest.fixture(params=["anthropic", "gemini", "bedrock"])
def speaker(request) -> Speaker:
    return Speaker(request.param, request.getfixturevalue(f"fake_{request.param}"))


def test_every_request_is_recorded_with_headers_body_operation_and_model(speaker):
    speaker.send("hello", model="model-a")

    received = speaker.fake.last
    assert received.method == "POST" and received.model == "model-a"
    assert received.operation in ("messages", "generateContent", "converse")
    assert "hello" in json.dumps(received.body)
    assert received.headers["content-type"].startswith("application/json")
    assert speaker.fake.received(received.path) == [received]


def test_a_fault_for_one_model_and_one_time_applies_exactly_there(speaker):
    speaker.fake.fail(429, times=1, model="model-b")

    assert speaker.send(model="model-a").status_code == 200
    assert speaker.send(model="model-b").status_code == 429
    assert speaker.send(model="model-b").status_code == 200


def test_stalled_streams_send_their_first_events_then_nothing(speaker):
    speaker.fake.stall(after_chunks=2)
    url, headers, body = speaker.request("a b c d", stream=True)
    received = b""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", url, content=body, headers=headers, timeout=0.5) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    assert len(speaker.events(received)) == 2


def test_a_dropped_stream_ends_the_connection_half_way(speaker):
    speaker.fake.drop_stream(after_chunks=2)
    url, headers, body = speaker.request("a b c d", stream=True)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url, content=body, headers=headers, timeout=5) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert len(speaker.events(received)) == 2


def test_a_body_that_is_not_streamed_stops_half_way_when_stalled_or_dropped(speaker):
    speaker.fake.stall(times=1)
    with pytest.raises(httpx.ReadTimeout):
        speaker.send(timeout=0.5)
    speaker.fake.drop_stream(times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        speaker.send()


def test_a_hanging_fake_never_answers_and_notices_the_client_leaving(speaker):
    speaker.fake.hang(times=1)
    with pytest.raises(httpx.ReadTimeout):
        speaker.send(timeout=0.3)
    deadline = time.monotonic() + 5
    while speaker.fake.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert speaker.fake.disconnects == 1
    assert speaker.send().status_code == 200


def test_a_delay_holds_back_the_answer(speaker):
    speaker.fake.delay_s = 5
    with pytest.raises(httpx.ReadTimeout):
        speaker.send(timeout=0.3)


def test_a_slow_drip_pauses_between_events_without_changing_them(speaker):
    normal = speaker.events(speaker.send("a b c", stream=True).content)
    speaker.fake.chunk_delay_s = 0.01
    assert len(speaker.events(speaker.send("a b c", stream=True).content)) == len(normal)

    speaker.fake.chunk_delay_s = 5
    url, headers, body = speaker.request("a b c", stream=True)
    received = b""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", url, content=body, headers=headers, timeout=1) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert len(speaker.events(received)) == 1  # the first event, then the long pause


def test_small_writes_split_events_without_changing_them(speaker):
    whole = speaker.events(speaker.send("a b c", stream=True).content)
    speaker.fake.write_size = 3
    split = speaker.events(speaker.send("a b c", stream=True).content)
    assert len(split) == len(whole)


def test_an_error_mid_stream_follows_the_events_already_sent(speaker):
    speaker.fake.fail_mid_stream(after_chunks=1)
    events = speaker.events(speaker.send("a b c", stream=True).content)
    assert len(events) == 2
    assert "error" in json.dumps(events[-1]) or "exception" in json.dumps(events[-1])


def test_respond_raw_answers_exactly_the_bytes_given(speaker):
    speaker.fake.respond_raw(b"<html>bad gateway</html>", status=502, content_type="text/html")
    response = speaker.send()
    assert (response.status_code, response.content) == (502, b"<html>bad gateway</html>")
    assert response.headers["content-type"] == "text/html"


def test_reset_clears_faults_recordings_and_pacing(speaker):
    speaker.fake.fail(500)
    speaker.fake.chunk_delay_s = 1
    speaker.send()
    speaker.fake.reset()
    assert speaker.fake.requests == [] and speaker.fake.chunk_delay_s == 0
    response = speaker.send("hi")
    assert response.status_code == 200 and speaker.text(response) == "Echo: hi"


def test_an_unknown_path_is_a_provider_shaped_404(speaker):
    url, headers, body = speaker.request("x", stream=False)
    if speaker.name == "bedrock":  # the signature covers the path: sign the wrong one
        path = "/model/m/unknown"
        headers = speaker.fake.signed_headers(path, body)
        url = speaker.fake.url + path
    else:
        url = url.rsplit("/", 1)[0] + "/nothing-here"
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == 404
    error = response.json()
    assert "error" in error or "message" in error
