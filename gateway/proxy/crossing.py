"""Requests that cross formats: a client's dialect and a provider's wire format that differ.

Same-format traffic never comes here (it is passed through untouched, model id aside). For the
rest, the request is translated once per candidate route before any call (the upstream model and
the default max_tokens differ per route), so a parameter no candidate can honour is a 400 naming
it before anything is sent; a route that cannot honour it is left out when another can.
"""

import orjson

from routing.formats import (
    Defaults,
    Malformed,
    StreamTranslator,
    Unsupported,
    translate_request,
    translate_response,
)
from routing.providers import ProviderAdapter, ProviderError, UpstreamResponse, get_adapter
from routing.selectors import Route

from .errors import BadRequest

# Anthropic requires max_tokens; a deployment without max_output_tokens gets this.
DEFAULT_MAX_TOKENS = 4096
DROPPED_HEADER = "x-gateway-dropped-params"


class Plan:
    """One route's translated request, and the client parameters it had to drop."""

    __slots__ = ("body", "dropped", "target")

    def __init__(self, body: dict, dropped: list[str], target: str) -> None:
        self.body = body
        self.dropped = dropped
        self.target = target


def _defaults(route: Route, adapter: ProviderAdapter) -> Defaults:
    return Defaults(
        max_tokens=route.capabilities.max_output_tokens or DEFAULT_MAX_TOKENS,
        max_tokens_field=adapter.max_tokens_field,
    )


def plan(
    routes: tuple[Route, ...], data: dict, source: str
) -> tuple[tuple[Route, ...], dict[int, Plan] | None]:
    """The routes left, and the translated request of each route whose format is not the
    client's (None when all speak the client's format: the common case costs one lookup per
    route). Raises BadRequest when no route can honour the request."""
    plans: dict[int, Plan] | None = None
    refused: Unsupported | None = None
    kept = []
    for route in routes:
        adapter = get_adapter(route.provider_kind)
        target = adapter.format
        if target != source:
            try:
                body, dropped = translate_request(
                    data,
                    source=source,
                    target=target,
                    model=route.upstream_model,
                    defaults=_defaults(route, adapter),
                )
            except Unsupported as exc:
                refused = refused or exc
                continue
            if plans is None:
                plans = {}
            plans[route.deployment_id] = Plan(body, dropped, target)
        kept.append(route)
    if not kept and refused is not None:
        where = f"'{refused.param}': " if refused.param else ""
        raise BadRequest(
            f"unsupported parameter {where}{refused.message}",
            param=refused.param,
            code="unsupported_parameter",
        )
    return (tuple(kept) if len(kept) != len(routes) else routes), plans


def translated_answer(
    route: Route, result: UpstreamResponse, found: Plan, client: str
) -> UpstreamResponse:
    """A provider's non-streamed answer in the client's format (its usage already read)."""
    try:
        body, _ = translate_response(
            orjson.loads(result.body),
            source=found.target,
            target=client,
            model=route.upstream_model,
        )
    except (Malformed, orjson.JSONDecodeError, TypeError, AttributeError) as exc:
        raise ProviderError(
            f"{route.provider_name} returned an answer that is not a {found.target} message",
            retryable=True,
            upstream_ms=result.upstream_ms,
        ) from exc
    result.body = orjson.dumps(body)
    return result


def stream_translator(found: Plan, client: str, include_usage: bool) -> StreamTranslator:
    return StreamTranslator(found.target, client, include_usage=include_usage)


def dropped_header(plans: dict[int, Plan] | None, route: Route | None) -> str:
    if plans is None or route is None:
        return ""
    found = plans.get(route.deployment_id)
    return ", ".join(found.dropped) if found is not None else ""
