"""Anthropic's Messages API, inbound: the official `anthropic` SDK works against the gateway.

    POST /v1/messages                 served by the pipeline like /v1/chat/completions, in the
                                      Anthropic dialect (dialects/anthropic.py), by any provider
                                      kind: passed through to Anthropic upstreams, translated
                                      for the others; usage rows have endpoint `messages`
    POST /v1/messages/count_tokens    the provider's exact count when the model's first
                                      deployment is Anthropic; else an estimate, said so in
                                      `x-gateway-token-count: estimated`. Not billable: no row

Same auth (the key in `x-api-key` or `Authorization: Bearer`), policy and routing as /v1.
"""

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from routing.providers import ProviderError, get_adapter
from routing.providers.usage import estimate_tokens

from . import calls, limits, parsing, pipeline, privacy, refusals
from .auth import authenticate
from .context import SCOPE_START, RequestContext, new_request_id
from .dialects import ANTHROPIC
from .errors import GatewayError
from .views import MethodNotAllowed

COUNT_TOKENS = "messages.count_tokens"
COUNT_KIND_HEADER = "x-gateway-token-count"


def _method_not_allowed(request: HttpRequest) -> HttpResponse:
    exc = MethodNotAllowed(f"{request.method} is not allowed here; use POST")
    request_id = new_request_id()
    refusals.record(getattr(request, "scope", {}), exc, request_id)
    response = ANTHROPIC.error_response(exc, request_id)
    response["allow"] = "POST"
    return response


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request)
    return await pipeline.handle(request, pipeline.MESSAGES, dialect=ANTHROPIC)


async def _count(ctx: RequestContext, request: HttpRequest, data: dict) -> tuple[int, bool]:
    """(input tokens, exact)."""
    routes = await pipeline.candidates(ctx, "chat", pipeline.route_tag(request))
    # No routes: only the group's fallbacks meet the team's compliance requirements.
    route = routes[0] if routes else None
    adapter = get_adapter(route.provider_kind) if route else None
    if adapter is None or adapter.format != ANTHROPIC.name:
        source = [data.get("system"), data["messages"], data.get("tools")]
        return estimate_tokens(source), False
    ctx.route = route
    headers = pipeline.forward_headers(request, ctx)
    try:
        count = await adapter.count_tokens(route, {**data, "model": route.upstream_model}, headers)
    except ProviderError as exc:
        raise calls.upstream_failed(exc, route) from exc
    return count, True


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request)
    scope = getattr(request, "scope", {})
    ctx = RequestContext(COUNT_TOKENS, scope.get(SCOPE_START))
    try:
        body = parsing.read_body(request)
        ctx.principal = await authenticate(request, key_header=ANTHROPIC.key_header)
        ctx.policy = await limits.policy_for(ctx.principal)
        parsing.check_forwarded_headers(request)
        data = parsing.parse_json_object(body)
        model = data.get("model")
        ctx.requested_model = model if isinstance(model, str) else ""
        ANTHROPIC.validators[COUNT_TOKENS](data)
        if ctx.policy.scrub_prompts:  # counting sends the prompt to the provider too
            await privacy.scrub_prompt(data, ctx.policy.pii_patterns, ctx.request_id)
        tokens, exact = await _count(ctx, request, data)
    except GatewayError as exc:
        # Counting is not billable, so no refusal of it has a usage row.
        refusals.record(scope, exc, ctx.request_id)
        return ANTHROPIC.error_response(exc, ctx.request_id)
    response = HttpResponse(orjson.dumps({"input_tokens": tokens}), content_type="application/json")
    response["x-request-id"] = ctx.request_id
    response[COUNT_KIND_HEADER] = "exact" if exact else "estimated"
    return response
