"""The hot path: the one place a /v1 request is authenticated, checked, routed, sent, settled.

    read body (handler.py: bounded) -> authenticate -> policy (limits.py: the cached snapshot)
    -> parse and validate (parsing.py, the dialect's validation) -> candidates (routing table,
    narrowed by the policy and by what the request needs) -> per-request rules (features,
    blocked terms, max_tokens) -> admission (limits.py: rate limits and budgets, one round
    trip) -> translate for routes of another wire format (crossing.py) -> call upstream,
    falling back before the first byte (calls.py) -> respond -> settle (context.py: the
    reservation replaced by actual usage, and the usage event)

The client's dialect (dialects/: OpenAI on /v1 and the Azure-style paths, Anthropic on
/v1/messages) decides where the key is, how the body is validated and how errors look; the
rest is the same for every dialect.

A request refused before authentication has no tenant and so no usage row; refusals.py counts
and logs it instead.

Candidate selection: a routing rule may send the request to another group (by team, or by the
x-gateway-route-tag header); the group's deployments are narrowed by the policy and by what the
request needs, then ordered by the group's strategy (routing/strategies.py). Health and
latency will slot into that ordering.
"""

import asyncio
import functools
import logging
from dataclasses import replace

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from routing.providers import get_adapter
from routing.providers.usage import estimate_tokens
from routing.selectors import Route, RoutingTable, routing_table_cache

from . import calls, chain, crossing, limits, needs, parsing, phases, privacy, refusals, tags
from .auth import authenticate
from .context import SCOPE_START, RequestContext, settle_shielded
from .dialects import OPENAI, Dialect
from .errors import (
    BadRequest,
    GatewayError,
    InternalError,
    ModelNotFound,
    ServiceUnavailable,
    error_response,
)
from .handler import AFTER_RESPONSE, SCOPE_DEFERS_SETTLE
from .needs import Needs
from .streaming import relay

log = logging.getLogger("gateway.proxy")

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"  # Anthropic's Messages API (dialects/anthropic.py)
ROUTE_TAG_HEADER = "x-gateway-route-tag"


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


async def candidates(ctx: RequestContext, mode: str, tag: str = "") -> tuple[Route, ...]:
    """The deployments that may serve this request: of its model's group (or the one a routing
    rule sends it to), allowed by the policy. Sets ctx.route_group; not yet ordered."""
    table = await _routing_table()
    model = ctx.requested_model
    group = table.routed_model(model, ctx.principal.team_id, tag) if table.rules else model
    routes = table.candidates(mode, group)
    if not routes:
        raise _model_not_found(table, mode, group)
    if not ctx.policy.may_use(model):
        raise limits.denied(ctx.policy.model_denial(model))
    # A rule never opens a model the policy closes: the group must be allowed too.
    if group != model and not ctx.policy.may_use(group):
        denial = ctx.policy.model_denial(group)
        message = f"a routing rule sends '{model}' to '{group}'; {denial.message}"
        raise limits.denied(replace(denial, message=message))
    ctx.route_group = table.group(mode, group)
    routes = limits.allowed_routes(ctx.policy, routes, group)
    gate = await limits.compliance_gate(ctx.principal)
    if gate is None:  # the team requires nothing: nothing more to do
        return routes
    kept = gate.narrow(routes)
    # None of the group complies: its fallback groups may still serve (chain.py), else 403.
    if not kept and not chain.segments(ctx, table, mode, ctx.route_group.fallbacks, tuple, gate):
        raise limits.compliance_denied(gate, routes, group)
    return kept


async def _chat_chain(ctx: RequestContext, routes, wanted: Needs) -> chain.Chain:
    """The group's capable deployments, then its fallback groups' (chain.py). When none of the
    group can hold the prompt (400 context_length_exceeded), its context_fallbacks serve."""
    table = await _routing_table()
    group = ctx.route_group
    gate = await limits.compliance_gate(ctx.principal)

    def capable(rs):
        return needs.capable_routes(rs, wanted, ctx.requested_model)

    context = chain.segments(ctx, table, "chat", group.context_fallbacks, capable, gate)
    primary = []
    try:
        # No routes: none of the group meets the team's compliance requirements (candidates()
        # found a fallback group that does).
        if routes:
            primary = [(group, tuple(capable(routes)))]
    except BadRequest as exc:
        if exc.code != "context_length_exceeded" or not context:
            raise
        primary, context = context, []
    primary += chain.segments(ctx, table, "chat", group.fallbacks, capable, gate)
    if not primary and not context and gate is not None:
        # The compliant fallbacks cannot serve this request (capabilities) either.
        raise limits.compliance_denied(gate, (), ctx.requested_model)
    output = wanted.output_tokens or limits.default_output_tokens(routes)
    return await chain.build(
        primary, context, prompt_tokens=wanted.prompt_tokens(), output_tokens=output
    )


def route_tag(request: HttpRequest) -> str:
    return request.headers.get(ROUTE_TAG_HEADER, "").strip()


def _output_field(dialect: Dialect, wanted: Needs) -> str:
    """Where the body asks for its output tokens (and where a cap or a clamp writes them)."""
    if dialect.name == "anthropic":
        return "max_tokens"
    # Neither given: OpenAI's current name, which its reasoning models require.
    return wanted.output_param if wanted.output_tokens else "max_completion_tokens"


def _set_output_tokens(data: dict, field: str, wanted: Needs, tokens: int) -> None:
    data[field] = tokens
    wanted.output_tokens = tokens


async def _chat(
    ctx: RequestContext, request: HttpRequest, data: dict, dialect: Dialect
) -> HttpResponse:
    # Types already checked by the dialect's validation: `stream` is a boolean or null,
    # `stream_options` an object or null.
    ctx.stream = data.get("stream") is True
    stream_options = data.get("stream_options") or {}
    client = dialect.name
    routes = await candidates(ctx, "chat", route_tag(request))
    wanted = needs.chat_needs(dialect.chat_view(data), len(request.body))
    field = _output_field(dialect, wanted)
    capped = limits.check_chat(ctx.policy, ctx.requested_model, wanted)
    if capped is not None:
        _set_output_tokens(data, field, wanted, capped)
    chain_ = await _chat_chain(ctx, routes, wanted)
    routes = chain_.all_routes
    output_tokens = wanted.output_tokens or limits.default_output_tokens(routes)
    ctx.enter(phases.ADMISSION)
    granted = await limits.admit(
        ctx,
        routes,
        prompt_tokens=wanted.prompt_tokens(),
        output_tokens=output_tokens,
        user=limits.end_user(request, data),
    )
    ctx.enter(phases.POLICY)  # routing again: planning translations
    if granted < output_tokens:  # a budget with little left clamped the answer's length
        _set_output_tokens(data, field, wanted, granted)
    # Routes of another wire format get the request translated (once each, before any call).
    routes, plans = crossing.plan(chain_.all_routes, data, client)
    chain_.keep({r.deployment_id for r in routes})
    headers = forward_headers(request, ctx)
    ctx.enter(phases.UPSTREAM)

    if not ctx.stream:

        async def complete(r: Route):
            adapter = get_adapter(r.provider_kind)
            found = plans.get(r.deployment_id) if plans is not None else None
            if found is None:
                return await adapter.chat(r, {**data, "model": r.upstream_model}, headers)
            result = await adapter.chat(r, found.body, headers)
            return crossing.translated_answer(r, result, found, client)

        result, _ = await calls.call(ctx, chain_, complete)
        ctx.enter(phases.RESPOND)  # until the response is sent (the settlement follows)
        ctx.usage = result.usage
        ctx.upstream_ms += result.upstream_ms
        body = ctx.route.redact(result.body)
        if ctx.capture is not None:
            ctx.capture.response = body  # read when the request settles, after sending
        response = HttpResponse(body, content_type="application/json")
        _dropped_header(response, plans, ctx)
        return response

    def open_stream(r: Route):
        found = plans.get(r.deployment_id) if plans is not None else None
        payload = {**data, "model": r.upstream_model} if found is None else found.body
        return get_adapter(r.provider_kind).chat_stream(r, payload, headers)

    upstream, deadline = await calls.call(ctx, chain_, open_stream)
    ctx.enter(phases.RESPOND)  # until the relay's end (streaming.py)
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
    routes = await candidates(ctx, "embedding", route_tag(request))
    limits.check_embeddings(ctx.policy, ctx.requested_model, data)
    prompt_tokens = estimate_tokens(data.get("input"))
    table = await _routing_table()
    group = ctx.route_group
    gate = await limits.compliance_gate(ctx.principal)
    found = await chain.build(
        [(group, routes), *chain.segments(ctx, table, "embedding", group.fallbacks, list, gate)],
        [],
        prompt_tokens=prompt_tokens,
        output_tokens=0,
    )
    ctx.enter(phases.ADMISSION)
    await limits.admit(
        ctx,
        found.all_routes,
        prompt_tokens=prompt_tokens,
        output_tokens=0,
        user=limits.end_user(request, data),
    )
    headers = forward_headers(request, ctx)
    ctx.enter(phases.UPSTREAM)
    result, _ = await calls.call(
        ctx,
        found,
        lambda r: get_adapter(r.provider_kind).embeddings(
            r, {**data, "model": r.upstream_model}, headers
        ),
    )
    ctx.enter(phases.RESPOND)
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
        if ctx.fallbacks:
            response["x-gateway-fallbacks"] = "; ".join(ctx.fallbacks)
        response["x-gateway-route-strategy"] = ctx.route_group.strategy
        if ctx.route.residency:
            response["x-gateway-region"] = ctx.route.residency
        # A stream's cost is known only after its last chunk, when headers are long gone;
        # it is in the usage log.
        if not response.streaming:
            response["x-gateway-cost-usd"] = f"{ctx.cost():f}"
    for name, value in limits.response_headers(ctx).items():
        response[name] = value
    if ctx.redactions is not None:
        response[privacy.REDACTIONS_HEADER] = str(ctx.redactions)
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
        ctx.enter(phases.AUTH)
        ctx.principal = await authenticate(request, key_header=dialect.key_header)
        ctx.enter(phases.POLICY)
        ctx.policy = await limits.policy_for(ctx.principal)
        ctx.enter(phases.PARSE)
        parsing.check_forwarded_headers(request)
        data = parsing.parse_json_object(body)
        if path_model is not None:
            data["model"] = path_model
        model = data.get("model")
        # Known before validation, so even a refused request is logged with the model it named.
        ctx.requested_model = model if isinstance(model, str) else ""
        dialect.validators[endpoint](data)
        ctx.tags = tags.parse(request, data, ctx.policy.tag_keys)
        ctx.enter(phases.POLICY)
        if ctx.policy.handles_content:  # False in the default metadata mode: nothing to do
            await privacy.prepare(ctx, data, embeddings=endpoint == EMBEDDINGS, dialect=dialect)
        response = await _HANDLERS[endpoint](ctx, request, data, dialect)
    except GatewayError as exc:
        ctx.enter(None)  # the phase that failed ends here; an error response is no `respond`
        ctx.fail(exc.status, exc.error_type)
        if ctx.principal is None:  # no usage row will tell of it
            refusals.record(scope, exc, ctx.request_id)
        response = dialect.error_response(exc, ctx.request_id)
    except asyncio.CancelledError:
        # The client went away (Django cancels the view); the upstream may already have been
        # called, so the request is still logged. Shielded: this task is being cancelled.
        ctx.fail(499, "client_disconnected")
        await settle_shielded(ctx)
        raise
    except Exception:
        ctx.enter(None)
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
            setattr(response, AFTER_RESPONSE, functools.partial(settle_shielded, ctx))
        else:
            await settle_shielded(ctx)
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
        policy = await limits.policy_for(await authenticate(request))
        table = await _routing_table()
        names = sorted(m for m in table.model_names() if policy.may_use(m))
    except GatewayError as exc:
        return _models_refused(request, exc, ctx)
    created = int(ctx.created_at)
    return _json({"object": "list", "data": [_model_object(n, created) for n in names]}, ctx)


async def retrieve_model(request: HttpRequest, model: str) -> HttpResponse:
    ctx = RequestContext("models", getattr(request, "scope", {}).get(SCOPE_START))
    try:
        policy = await limits.policy_for(await authenticate(request))
        table = await _routing_table()
        # One answer for "no such model" and "not for this key", as the list shows neither.
        if model not in table.model_names() or not policy.may_use(model):
            raise ModelNotFound(
                f"the model '{model}' does not exist or this key has no access to it",
                param="model",
            )
    except GatewayError as exc:
        return _models_refused(request, exc, ctx)
    return _json(_model_object(model, int(ctx.created_at)), ctx)
