"""OpenTelemetry traces of the request path, when an exporter is configured.

On when GATEWAY_OTEL_ENABLED is true or OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ variant) is
set (gateway/settings.py): spans go over OTLP/HTTP (protobuf) through a batching processor; the
exporter reads the standard OTEL_* variables (endpoint, headers, timeout, OTEL_SERVICE_NAME,
OTEL_BSP_SCHEDULE_DELAY...). Off (the default), the tracing SDK and exporter are never imported
and the request path runs the very functions it would without this module: the decorators below
return them unwrapped, decided once at import. (redis-py 8 imports the OpenTelemetry API and
metrics SDK by itself when they are installed, for its own instrumentation, which stays off.)

One trace per /v1 request:
    gateway.request     the whole request, arrival to the last byte (and the settlement after)
      gateway.auth        the key lookup
      gateway.policy      the caller's effective policy
      gateway.admission   rate limits and budgets
      gateway.upstream    each attempt (retries and fallbacks too), up to the response headers
      gateway.settle      the usage event
The request span carries ids, names and numbers (request id, endpoint, team, models, provider,
deployment, tokens, cost, attempts, status, error type), never content: no prompt, response or
error message (an upstream's or a policy's message may quote the prompt), no key.
"""

import contextvars
import functools
import logging
import os

from django.conf import settings

log = logging.getLogger("gateway.tracing")

ENABLED: bool = settings.GATEWAY_OTEL_ENABLED
SERVICE_NAME = "llm-gateway"

_tracer = None
_provider = None
# The request's root span, for attributes known only when it settles.
_root: contextvars.ContextVar = contextvars.ContextVar("gateway_root_span", default=None)


def configure() -> None:
    """Install the tracer provider and its OTLP exporter, once per process (gateway/asgi.py)."""
    global _tracer, _provider
    if not ENABLED or _tracer is not None:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME (read by Resource.create) wins over the default name.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    _provider = TracerProvider(resource=Resource.create(attributes))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _tracer = trace.get_tracer("gateway")
    log.info("OpenTelemetry traces on: exporting over OTLP/HTTP")


def shutdown() -> None:
    """Export the spans still queued (server shutdown)."""
    if _provider is not None:
        _provider.shutdown()


def _failed(span, exc: BaseException) -> None:
    """Mark a span failed with the error's type and code, never its message."""
    from opentelemetry.trace import Status, StatusCode

    kind = getattr(exc, "error_type", None) or getattr(exc, "kind", None) or type(exc).__name__
    span.set_attribute("gateway.error_type", str(kind))
    span.set_status(Status(StatusCode.ERROR, str(kind)))


def _span(name: str, **kwargs):
    # No exception events: their text may hold what a span must not (see the module docstring).
    return _tracer.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False, **kwargs
    )


def traced(name: str):
    """Decorate a coroutine function with a span; off, the function itself is returned."""

    def decorate(fn):
        if not ENABLED:
            return fn

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            if _tracer is None:
                return await fn(*args, **kwargs)
            with _span(name) as span:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    _failed(span, exc)
                    raise

        return wrapper

    return decorate


def upstream_attempts(attempt):
    """Wrap calls.py's attempt function so each attempt gets a span naming its deployment."""
    if not ENABLED or _tracer is None:
        return attempt

    async def traced_attempt(route):
        from opentelemetry.trace import SpanKind

        attributes = {
            "gateway.provider": route.provider_name,
            "gateway.deployment": route.label,
            "gateway.model": route.model_name,
        }
        with _span("gateway.upstream", kind=SpanKind.CLIENT, attributes=attributes) as span:
            try:
                return await attempt(route)
            except Exception as exc:
                _failed(span, exc)
                raise

    return traced_attempt


def asgi(app):
    """The ASGI app with a root span per HTTP request; off, the app itself."""
    if not ENABLED:
        return app

    async def traced_app(scope, receive, send):
        if scope["type"] != "http" or _tracer is None:
            await app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind

        attributes = {"http.request.method": scope.get("method", ""), "url.path": scope["path"]}
        with _span("gateway.request", kind=SpanKind.SERVER, attributes=attributes) as span:

            async def send_and_note(message):
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            token = _root.set(span)
            try:
                await app(scope, receive, send_and_note)
            finally:
                _root.reset(token)

    return traced_app


def annotate(ctx) -> None:
    """Put what the request settled with on its root span (metrics.request_settled calls it)."""
    span = _root.get()
    if span is None:
        return
    principal, route, usage = ctx.principal, ctx.route, ctx.usage
    attributes = {
        "gateway.request_id": ctx.request_id,
        "gateway.endpoint": ctx.endpoint,
        "gateway.team": principal.team_slug if principal is not None else "",
        "gateway.requested_model": ctx.requested_model,
        "gateway.stream": ctx.stream,
        "gateway.attempts": ctx.attempts,
        "gateway.status": ctx.status,
        "gateway.input_tokens": usage.input_tokens,
        "gateway.output_tokens": usage.output_tokens,
        "gateway.overhead_ms": round(ctx.overhead_ms(), 3),
    }
    if ctx.error_type:
        attributes["gateway.error_type"] = ctx.error_type
    if route is not None:
        attributes["gateway.provider"] = route.provider_name
        attributes["gateway.deployment"] = route.label
        attributes["gateway.model"] = route.model_name
        attributes["gateway.cost_usd"] = float(ctx.cost())
    span.set_attributes(attributes)
