"""Where the time goes, on /metrics of the gateway under test (one process): each request's
phases counted once, only the phases it reached; GC pauses and snapshot builds exposed."""

import time

from tests.helpers_metrics import Scrape, scrape

from .support import MESSAGES

PHASES = ("parse", "auth", "policy", "admission", "upstream", "respond", "settle")
N = 5


def _counts(found: Scrape) -> dict[str, float]:
    return {p: found.value("gateway_phase_seconds_count", phase=p) for p in PHASES}


def _deltas_once_settled(gateway, before: dict, expected: dict) -> dict:
    """The phase count deltas, polled until they reach `expected`: a request is counted when
    it settles, just after its response has gone out."""
    deadline = time.monotonic() + 10
    while True:
        after = _counts(scrape(gateway.url))
        deltas = {p: after[p] - before[p] for p in PHASES}
        if deltas == expected or time.monotonic() > deadline:
            return deltas
        time.sleep(0.05)


def _chat(gateway, key: str | None = None, **body):
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions",
            headers=gateway.auth(key),
            json={"model": "chat-fast", "messages": MESSAGES, **body},
        )


def test_each_completed_request_counts_every_phase_once(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    before = _counts(scrape(gateway.url))

    responses = [_chat(gateway) for _ in range(N)]

    assert [r.status_code for r in responses] == [200] * N
    assert _deltas_once_settled(gateway, before, dict.fromkeys(PHASES, N)) == dict.fromkeys(
        PHASES, N
    )
    found = scrape(gateway.url)
    # Phase times are real: the upstream call is a loopback round trip, never zero.
    assert found.value("gateway_phase_seconds_sum", phase="upstream") > 0
    buckets = {
        labels["le"]
        for name, labels, _ in found.samples
        if name == "gateway_phase_seconds_bucket" and labels["phase"] == "auth"
    }
    assert {"1e-05", "0.001", "1.0", "+Inf"} <= buckets


def test_a_bad_key_counts_parse_and_auth_only(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    before = _counts(scrape(gateway.url))

    refused = _chat(gateway, key="sk-gw-" + "x" * 40)

    assert refused.status_code == 401
    expected = {p: (1 if p in ("parse", "auth") else 0) for p in PHASES}
    assert _deltas_once_settled(gateway, before, expected) == expected


def test_an_unknown_model_stops_at_policy_and_is_settled(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    before = _counts(scrape(gateway.url))

    refused = _chat(gateway, model="no-such-model")

    assert refused.status_code == 404
    expected = {p: (0 if p in ("admission", "upstream", "respond") else 1) for p in PHASES}
    assert _deltas_once_settled(gateway, before, expected) == expected


def test_a_stream_counts_upstream_and_its_relay_as_respond(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    before = _counts(scrape(gateway.url))

    with (
        gateway.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers=gateway.auth(),
            json={"model": "chat-fast", "messages": MESSAGES, "stream": True},
        ) as response,
    ):
        body = b"".join(response.iter_bytes())

    assert response.status_code == 200
    assert body.rstrip().endswith(b"data: [DONE]")
    assert _deltas_once_settled(gateway, before, dict.fromkeys(PHASES, 1)) == dict.fromkeys(
        PHASES, 1
    )


def test_gc_pauses_and_snapshot_builds_are_exposed(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    for _ in range(N):
        assert _chat(gateway).status_code == 200

    found = scrape(gateway.url)

    assert found.families["gateway_gc_pause_seconds"] == "histogram"
    generations = {
        labels["generation"]
        for name, labels, _ in found.samples
        if name == "gateway_gc_pause_seconds_count"
    }
    assert generations == {"0", "1", "2"}
    # Requests allocate: the young generation has been collected by now.
    assert found.value("gateway_gc_pause_seconds_count", generation="0") > 0
    assert found.families["gateway_snapshot_build_seconds"] == "histogram"
    # The label is called `name`, as is Scrape.value's first parameter: counted here instead.
    builds = {
        labels["name"]: value
        for sample, labels, value in found.samples
        if sample == "gateway_snapshot_build_seconds_count"
    }
    for snapshot in ("routing", "policy", "compliance"):
        assert builds.get(snapshot, 0) >= 1, snapshot
