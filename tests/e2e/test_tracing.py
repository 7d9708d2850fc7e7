"""OpenTelemetry traces: a web process with OTEL_EXPORTER_OTLP_ENDPOINT set exports the request
path's spans over OTLP/HTTP to a collector (a fake one here, decoding the protobuf as a real one
would); they carry names and numbers, never the prompt or the key. Off, the SDK is not even
imported."""

import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.conf import settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers_net import WebProcess
from tests.helpers_proc import PYTHON, ROOT, base_env, subprocess_database_url

from .support import TEAM, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

SPANS = {
    "gateway.request",
    "gateway.auth",
    "gateway.policy",
    "gateway.admission",
    "gateway.upstream",
    "gateway.settle",
}


class FakeCollector:
    """Accepts POST /v1/traces (OTLP/HTTP, protobuf) on 127.0.0.1 and keeps what it decoded."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.spans: list = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    collector.bodies.append(body)
                    for resource_spans in request.resource_spans:
                        for scope_spans in resource_spans.scope_spans:
                            collector.spans.extend(scope_spans.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def trace_of(self, request_id: str) -> list:
        """The spans of the trace whose root span names this request id."""
        with self.lock:
            spans = list(self.spans)
        roots = [s for s in spans if _attrs(s).get("gateway.request_id") == request_id]
        if not roots:
            return []
        return [s for s in spans if s.trace_id == roots[0].trace_id]


def _attrs(span) -> dict:
    values = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, which) if which else None
    return values


@pytest.fixture(scope="module")
def collector():
    fake = FakeCollector()
    fake.thread.start()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def traced_web(django_db_setup, tmp_path_factory, collector):
    process = WebProcess(
        tmp_path_factory.mktemp("tracing"),
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        WEB_CONCURRENCY="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds: export promptly, for the test
        OTEL_SERVICE_NAME="gateway-under-test",
    ).start()
    yield process
    process.stop()


def test_a_request_exports_its_spans_without_content(traced_web, collector, gateway, upstream):
    canary = f"canary-prompt-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{traced_web.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"model": "chat-fast", "messages": [{"role": "user", "content": canary}]},
        timeout=30,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    wait_for_usage_records(1)

    deadline = time.monotonic() + 15
    spans = []
    while time.monotonic() < deadline:
        spans = collector.trace_of(request_id)
        if {s.name for s in spans} >= SPANS:
            break
        time.sleep(0.1)
    by_name = {s.name: s for s in spans}
    assert set(by_name) >= SPANS, sorted(by_name)

    root = by_name["gateway.request"]
    assert root.parent_span_id == b""
    for name in SPANS - {"gateway.request"}:
        assert by_name[name].parent_span_id == root.span_id, name
    attrs = _attrs(root)
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/v1/chat/completions"
    assert attrs["gateway.team"] == TEAM
    assert attrs["gateway.requested_model"] == "chat-fast"
    assert attrs["gateway.provider"] == "fake-primary"
    assert attrs["gateway.input_tokens"] == upstream.prompt_tokens
    assert attrs["gateway.output_tokens"] == upstream.completion_tokens
    assert attrs["gateway.attempts"] == 1
    upstream_attrs = _attrs(by_name["gateway.upstream"])
    assert upstream_attrs["gateway.deployment"] == "fake-primary/fake-chat-fast"

    # Nothing the client sent as content or credential, anywhere in what was exported.
    with collector.lock:
        exported = b"".join(collector.bodies)
    assert canary.encode() not in exported
    assert gateway.key.encode() not in exported
    assert b"gateway-under-test" in exported  # OTEL_SERVICE_NAME: the exporter's env is read


def test_a_failed_attempt_is_a_failed_span_without_the_message(
    traced_web, collector, gateway, upstream
):
    upstream.fail(500, times=5, model="fake-chat-primary", message="secret-upstream-text")
    response = httpx.post(
        f"{traced_web.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"model": "chat-ha", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 15
    attempts = []
    while time.monotonic() < deadline and len(attempts) < 2:
        attempts = [s for s in collector.trace_of(request_id) if s.name == "gateway.upstream"]
        time.sleep(0.1)
    failed = [s for s in attempts if s.status.code == s.status.STATUS_CODE_ERROR]
    assert failed and len(attempts) > len(failed)
    assert _attrs(failed[0])["gateway.error_type"]
    with collector.lock:
        assert b"secret-upstream-text" not in b"".join(collector.bodies)


# Imports the app as uvicorn does, serves one chat request through it, then reports which of the
# tracing SDK's modules the process holds and whether the request path's functions are wrapped.
# (redis-py imports the OpenTelemetry API and metrics SDK on its own when they are installed, to
# offer its own, separately enabled, instrumentation: so the check is on the tracing SDK and the
# exporter, which only gateway/proxy/tracing.py imports.)
_PROBE = """
import asyncio, json, sys
import httpx
from gateway.asgi import application
from gateway.proxy import auth, context, limits

async def main():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/v1/chat/completions",
            headers={"authorization": "Bearer " + sys.argv[1]},
            json={"model": "chat-fast", "messages": [{"role": "user", "content": "hi"}]},
        )
    return response.status_code

status = asyncio.run(main())
functions = [auth.authenticate, limits.policy_for, limits.admit, context.RequestContext.settle]
print(json.dumps({
    "status": status,
    "sdk": sorted(m for m in sys.modules
                  if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))),
    "wrapped": [hasattr(f, "__wrapped__") for f in functions],
}))
"""


def _probe(gateway, **env) -> dict:
    result = subprocess.run(
        [PYTHON, "-c", _PROBE, gateway.key],
        cwd=ROOT,
        env=base_env(DATABASE_URL=subprocess_database_url(), REDIS_URL=settings.REDIS_URL, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_off_by_default_the_tracing_sdk_is_not_even_imported(gateway, upstream, collector):
    off = _probe(
        gateway,
        OTEL_EXPORTER_OTLP_ENDPOINT=None,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=None,
        GATEWAY_OTEL_ENABLED=None,
    )
    on = _probe(gateway, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)

    assert off == {"status": 200, "sdk": [], "wrapped": [False] * 4}
    # The same probe sees the SDK and the wrappers when tracing is on: the check above can fail.
    assert on["status"] == 200
    assert "opentelemetry.sdk.trace" in on["sdk"]
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in on["sdk"]
    assert on["wrapped"] == [True] * 4
