"""The hot path: the one place a /v1 request is authenticated, checked, routed, sent, settled.

    read body (handler.py: bounded) -> authenticate -> parse and validate (parsing.py, the
    dialect's validation) -> policy (allowed models) -> candidates (routing table) -> translate
    for routes of another wire format (crossing.py) -> call upstream, falling back before the
    first byte -> respond -> settle (usage event)

The client's dialect (dialects/: OpenAI on /v1 and the Azure-style paths, Anthropic on
/v1/messages) decides where the key is, how the body is validated and how errors look; the
rest is the same for every dialect.

A request refused before authentication has no tenant and so no usage row; refusals.py counts
and logs it instead.

Coming issues slot in here: the policy engine and one-round-trip admission (rate limits,
budgets) between candidates and the call, health/circuit filters inside candidate selection.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from routing.providers import ProviderError, get_adapter
from routing.selectors import Route, RoutingTable, routing_table_cache
from tenants.selectors import KeyPrincipal

from . import crossing, needs, parsing, refusals
from .auth import authenticate
from .context import SCOPE_START, RequestContext
from .dialects import OPENAI, Dialect
from .errors import (
    GatewayError,
    InternalError,
    ModelNotFound,
    PermissionDenied,
    ServiceUnavailable,
    UpstreamFailed,
    UpstreamRejected,
    error_response,
)
from .handler import AFTER_RESPONSE, SCOPE_DEFERS_SETTLE
from .streaming import relay

log = logging.getLogger("gateway.proxy")

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"  # Anthropic's Messages API (dialects/anthropic.py)


def forward_headers(request: HttpRequest, ctx: RequestContext) -> dict[str, str]:
    headers = {
        name: request.headers[name]
        for name in settings.GATEWAY_FORWARD_HEADERS
        if name in request.headers
    }
    headers["x-request-id"] = ctx.request_id
    return headers


async def _routing_table() -> RoutingTable:
    try:
        return await routing_table_cache.get()
    except DatabaseError as exc:
        raise ServiceUnavailable.of("database") from exc


# Where each mode's models are served, to point a caller at the right endpoint.
_ENDPOINT_FOR_MODE = {
    "chat": ("a chat", "/v1/chat/completions"),
    "embedding": ("an embedding", "/v1/embeddings"),
}


def _model_not_found(table: RoutingTable, mode: str, model: str) -> ModelNotFound:
    for other, (kind, endpoint) in _ENDPOINT_FOR_MODE.items():
        if other != mode and table.candidates(other, model):
            return ModelNotFound(f"'{model}' is {kind} model; use {endpoint}", param="model")
    return ModelNotFound(f"the model '{model}' does not exist", param="model")


def _model_not_allowed(principal: KeyPrincipal, model: str) -> PermissionDenied:
    if principal.refused_by_team(model):
        reason = f"team '{principal.team_slug}' does not allow model '{model}'"
    else:
        reason = f"key '{principal.key_name}' does not allow model '{model}'"
    return PermissionDenied(reason, param="model")


async def candidates(ctx: RequestContext, mode: str) -> tuple[Route, ...]:
    table = await _routing_table()
    model = ctx.requested_model
    routes = table.candidates(mode, model)
    if not routes:
        raise _model_not_found(table, mode, model)
    if not ctx.principal.may_use(model):
        raise _model_not_allowed(ctx.principal, model)
    return routes


def upstream_failed(exc: ProviderError, route: Route | None) -> GatewayError:
    if exc.kind == "client_error":
        # Relayed to the caller: never with a credential a careless upstream echoed.
        body = route.redact(exc.body) if route is not None and exc.body else exc.body
        rejected = UpstreamRejected(exc.status, body)
        if route is not None:  # after JSON decoding, in case of an escape the bytes hid
            rejected.message = route.redact_text(rejected.message)
            rejected.param = rejected.param and route.redact_text(rejected.param)
            rejected.code = rejected.code and route.redact_text(rejected.code)
        return rejected
    if exc.kind == "upstream_rate_limited":
        # A 429, Retry-After and all, so that SDKs back off as the provider asked.
        limited = UpstreamFailed(exc.message, status=429, code=exc.kind)
        limited.headers = dict(exc.headers)
        return limited
    status = {"upstream_timeout": 504, "upstream_unavailable": 503}.get(exc.kind, 502)
    return UpstreamFailed(exc.message, status=status, code=exc.kind)


# Less time than this left is no attempt: not even a round trip to a provider would fit. (Timers
# also fire up to a clock tick early, which can leave a sliver of the deadline.)
_MIN_ATTEMPT_S = 0.05


def _attempt_timed_out(route: Route, seconds: float, started: float) -> ProviderError:
    return ProviderError.timeout(
        f"{route.provider_name} did not finish within {seconds:.3g} s",
        upstream_ms=(time.monotonic() - started) * 1000,
    )


async def _call(ctx: RequestContext, routes, attempt: Callable[[Route], Awaitable]):
    """Try candidates in order. Nothing has been sent to the client yet, so falling back is safe.

    Each attempt is bounded by its route's attempt timeout and by what is left of the request's
    deadline; returns the result and when its attempt must end (a stream relays until then).
    """
    request_deadline = (
        time.monotonic() + settings.GATEWAY_REQUEST_DEADLINE_S - ctx.elapsed_ms() / 1000
    )
    last: ProviderError | None = None
    for route in routes:
        started = time.monotonic()
        budget = min(route.attempt_timeout_s, request_deadline - started)
        if budget < _MIN_ATTEMPT_S:
            last = last or ProviderError(
                "the request's deadline passed before an upstream was called",
                retryable=False,
                kind="upstream_timeout",
            )
            break
        ctx.attempts += 1
        ctx.route = route
        try:
            async with asyncio.timeout(budget):
                return await attempt(route), started + budget
        except TimeoutError:
            exc = _attempt_timed_out(route, budget, started)
        except ProviderError as failed:
            exc = failed
        ctx.upstream_ms += exc.upstream_ms
        last = exc
        log.warning(
            "request %s: %s failed (%s, retryable=%s)",
            ctx.request_id,
            route.label,
            exc.kind,
            exc.retryable,
        )
        if not exc.retryable:
            break
    raise upstream_failed(last, ctx.route)


async def _chat(
    ctx: RequestContext, request: HttpRequest, data: dict, dialect: Dialect
) -> HttpResponse:
    # Types already checked by the dialect's validation: `stream` is a boolean or null,
    # `stream_options` an object or null.
    ctx.stream = data.get("stream") is True
    stream_options = data.get("stream_options") or {}
    client = dialect.name
    routes = await candidates(ctx, "chat")
    # Only the candidates with what the request needs (tools, images, ...); 400 if none.
    routes = needs.capable_routes(
        routes, needs.chat_needs(dialect.chat_view(data), len(request.body)), ctx.requested_model
    )
    # Routes of another wire format get the request translated (once each, before any call).
    routes, plans = crossing.plan(routes, data, client)
    headers = forward_headers(request, ctx)

    if not ctx.stream:

        async def complete(r: Route):
            adapter = get_adapter(r.provider_kind)
            found = plans.get(r.deployment_id) if plans is not None else None
            if found is None:
                return await adapter.chat(r, {**data, "model": r.upstream_model}, headers)
            result = await adapter.chat(r, found.body, headers)
            return crossing.translated_answer(r, result, found, client)

        result, _ = await _call(ctx, routes, complete)
        ctx.usage = result.usage
        ctx.upstream_ms += result.upstream_ms
        response = HttpResponse(ctx.route.redact(result.body), content_type="application/json")
        _dropped_header(response, plans, ctx)
        return response

    def open_stream(r: Route):
        found = plans.get(r.deployment_id) if plans is not None else None
        payload = {**data, "model": r.upstream_model} if found is None else found.body
        return get_adapter(r.provider_kind).chat_stream(r, payload, headers)

    upstream, deadline = await _call(ctx, routes, open_stream)
    ctx.upstream_ms += upstream.upstream_ms
    wants_usage = bool(stream_options.get("include_usage"))
    found = plans.get(ctx.route.deployment_id) if plans is not None else None
    translator = None if found is None else crossing.stream_translator(found, client, wants_usage)
    response = StreamingHttpResponse(
        relay(
            ctx,
            upstream,
            data,
            wants_usage,
            deadline=deadline,
            translator=translator,
            sniffer=dialect.usage_sniffer() if translator is None else None,
            end_with=dialect.stream_error,
        ),
        content_type="text/event-stream",
    )
    response["cache-control"] = "no-cache"
    response["x-accel-buffering"] = "no"  # tell nginx-style proxies not to buffer the stream
    _dropped_header(response, plans, ctx)
    return response


def _dropped_header(response: HttpResponse, plans, ctx: RequestContext) -> None:
    if plans is not None:
        dropped = crossing.dropped_header(plans, ctx.route)
        if dropped:
            response[crossing.DROPPED_HEADER] = dropped


async def _embeddings(
    ctx: RequestContext, request: HttpRequest, data: dict, dialect: Dialect
) -> HttpResponse:
    routes = await candidates(ctx, "embedding")
    headers = forward_headers(request, ctx)
    result, _ = await _call(
        ctx,
        routes,
        lambda r: get_adapter(r.provider_kind).embeddings(
            r, {**data, "model": r.upstream_model}, headers
        ),
    )
    ctx.usage = result.usage
    ctx.upstream_ms += result.upstream_ms
    response = HttpResponse(ctx.route.redact(result.body), content_type="application/json")
    if result.dropped:
        response[crossing.DROPPED_HEADER] = ", ".join(result.dropped)
    return response


_HANDLERS = {CHAT: _chat, EMBEDDINGS: _embeddings, MESSAGES: _chat}


def _set_headers(response: HttpResponse, ctx: RequestContext) -> None:
    response["x-request-id"] = ctx.request_id
    if ctx.route is not None:
        response["x-gateway-deployment"] = ctx.route.label
        response["x-gateway-provider"] = ctx.route.provider_name
        response["x-gateway-attempts"] = str(ctx.attempts)
        # A stream's cost is known only after its last chunk, when headers are long gone;
        # it is in the usage log.
        if not response.streaming:
            response["x-gateway-cost-usd"] = f"{ctx.cost():f}"
    response["x-gateway-overhead-ms"] = f"{ctx.overhead_ms():.3f}"
    if not response.streaming:
        # No middleware adds it on /v1; without it the body goes out chunked.
        response["content-length"] = str(len(response.content))


async def handle(
    request: HttpRequest,
    endpoint: str,
    *,
    path_model: str | None = None,
    dialect: Dialect = OPENAI,
) -> HttpResponse:
    """Serve one chat, embeddings or messages request, spoken in `dialect`.

    `path_model` is the model the URL names (the Azure-style paths, gateway/proxy/azure.py); it
    replaces the body's `model`, as Azure's own service ignores the body's.
    """
    scope = getattr(request, "scope", {})
    ctx = RequestContext(endpoint, scope.get(SCOPE_START))
    if path_model is not None:
        ctx.requested_model = path_model  # logged even if the body turns out to be unreadable
    try:
        body = parsing.read_body(request)
        ctx.principal = await authenticate(request, key_header=dialect.key_header)
        parsing.check_forwarded_headers(request)
        data = parsing.parse_json_object(body)
        if path_model is not None:
            data["model"] = path_model
        model = data.get("model")
        # Known before validation, so even a refused request is logged with the model it named.
        ctx.requested_model = model if isinstance(model, str) else ""
        dialect.validators[endpoint](data)
        response = await _HANDLERS[endpoint](ctx, request, data, dialect)
    except GatewayError as exc:
        ctx.fail(exc.status, exc.error_type)
        if ctx.principal is None:  # no usage row will tell of it
            refusals.record(scope, exc, ctx.request_id)
        response = dialect.error_response(exc, ctx.request_id)
    except asyncio.CancelledError:
        # The client went away (Django cancels the view); the upstream may already have been
        # called, so the request is still logged. Shielded: this task is being cancelled.
        ctx.fail(499, "client_disconnected")
        await asyncio.shield(ctx.settle())
        raise
    except Exception:
        log.exception("request %s: unexpected error", ctx.request_id)
        exc = InternalError("the gateway failed to handle this request")
        ctx.fail(exc.status, exc.error_type)
        if ctx.principal is None:
            refusals.record(scope, exc, ctx.request_id)
        response = dialect.error_response(exc, ctx.request_id)
    _set_headers(response, ctx)
    if not response.streaming:
        if scope.get(SCOPE_DEFERS_SETTLE):
            # The proxy handler records usage once the response is sent: the client does not
            # wait for the usage event's round trip.
            setattr(response, AFTER_RESPONSE, ctx.settle)
        else:
            await asyncio.shield(ctx.settle())
    return response


def _model_object(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "gateway"}


def _json(body: dict, ctx: RequestContext) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    response["x-request-id"] = ctx.request_id
    return response


def _models_refused(request: HttpRequest, exc: GatewayError, ctx: RequestContext) -> HttpResponse:
    # Listing models is not billable, so no refusal of it has a usage row.
    refusals.record(getattr(request, "scope", {}), exc, ctx.request_id)
    return error_response(exc, ctx.request_id)


async def list_models(request: HttpRequest) -> HttpResponse:
    ctx = RequestContext("models", getattr(request, "scope", {}).get(SCOPE_START))
    try:
        principal = await authenticate(request)
        table = await _routing_table()
        names = sorted(m for m in table.model_names() if principal.may_use(m))
    except GatewayError as exc:
        return _models_refused(request, exc, ctx)
    created = int(ctx.created_at)
    return _json({"object": "list", "data": [_model_object(n, created) for n in names]}, ctx)


async def retrieve_model(request: HttpRequest, model: str) -> HttpResponse:
    ctx = RequestContext("models", getattr(request, "scope", {}).get(SCOPE_START))
    try:
        principal = await authenticate(request)
        table = await _routing_table()
        # One answer for "no such model" and "not for this key", as the list shows neither.
        if model not in table.model_names() or not principal.may_use(model):
            raise ModelNotFound(
                f"the model '{model}' does not exist or this key has no access to it",
                param="model",
            )
    except GatewayError as exc:
        return _models_refused(request, exc, ctx)
    return _json(_model_object(model, int(ctx.created_at)), ctx)
