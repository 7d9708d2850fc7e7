"""Policy and admission for one request: the steps between authentication and the call.

    policy_for      the caller's effective policy, from the cached snapshot (no database)
    allowed_routes  the candidates the policy allows (providers, regions)
    compliance_gate the team's compliance requirements, from the cached compliance table
    compliance_denied the 403 when no candidate's provider has the agreements they need
    check_chat      per-request rules: features, blocked terms, the max_tokens cap
    admit           rate limits and budgets for every scope, in one state-store round trip

Admission reserves the worst case: the estimated prompt plus the output tokens asked for (or a
default), priced at the priciest candidate, so no fallback can cost more than was reserved.
Settlement (context.py) replaces the reservation by what the call really used.
"""

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest

from billing.budgets import seed_spend
from compliance.snapshot import Gate, compliance_table_cache
from infra.singleflight import SingleFlight
from policies import admission
from policies.engine import EffectivePolicy, PolicyDenied, PolicyRequest
from policies.snapshot import policy_table_cache
from policies.types import BudgetScope, Denial
from routing.selectors import Route
from tenants.selectors import KeyPrincipal

from . import tracing
from .context import RequestContext
from .errors import GatewayError, PermissionDenied, RateLimited, ServiceUnavailable
from .needs import Needs

USER_HEADER = "x-gateway-user"
COMPLIANCE_DENIED = "compliance_denied"
BUDGET_WARNING_HEADER = "x-gateway-budget-warning"
# The capability names of needs.py, as policies name request features.
_FEATURE_NAMES = {"vision": "images"}


@tracing.traced("gateway.policy")
async def policy_for(principal: KeyPrincipal) -> EffectivePolicy:
    try:
        table = await policy_table_cache.get()
    except DatabaseError as exc:
        raise ServiceUnavailable.of("database") from exc
    return table.effective(principal)


def denied(denial: Denial) -> GatewayError:
    error = PermissionDenied(denial.message, param=denial.param, code=denial.code)
    error.status = denial.status
    return error


def allowed_routes(policy: EffectivePolicy, routes: Sequence[Route], model: str):
    kept = tuple(r for r in routes if policy.allows_route(r.provider_name, r.residency))
    if not kept:
        raise denied(policy.route_denial(model))
    return kept


async def compliance_gate(principal: KeyPrincipal) -> Gate | None:
    """The caller's team's requirements as a filter; None (nothing to do) for a team and
    organization that require nothing."""
    try:
        table = await compliance_table_cache.get()
    except DatabaseError as exc:
        raise ServiceUnavailable.of("database") from exc
    return table.gate(principal)


def compliance_denied(gate: Gate, routes: Sequence[Route], model: str) -> PermissionDenied:
    """403 compliance_denied: the team's requirement no route of `model` meets, and what its
    provider lacks. Logged as a policy denial (the usage row's error_type)."""
    return PermissionDenied(gate.denial(model, routes), code=COMPLIANCE_DENIED)


def _texts(messages: list) -> Iterable[str]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def check_chat(policy: EffectivePolicy, model: str, needs: Needs) -> int | None:
    """Apply the per-request rules; the max output tokens to set, or None to leave it."""
    request = PolicyRequest(
        model=model,
        features=frozenset(_FEATURE_NAMES.get(name, name) for name, _ in needs.features),
        output_tokens=needs.output_tokens,
        output_param=needs.output_param,
        texts=lambda: _texts(needs.messages),
    )
    try:
        return policy.check_request(request)
    except PolicyDenied as exc:
        raise denied(exc.denial) from exc


def check_embeddings(policy: EffectivePolicy, model: str, data: dict) -> None:
    """The per-request rules that apply to embeddings: blocked terms in the input."""
    inputs = data.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    request = PolicyRequest(
        model=model,
        features=frozenset(),
        output_tokens=0,
        output_param="max_tokens",
        # Token-id inputs carry no text to match.
        texts=lambda: (t for t in texts if isinstance(t, str)),
    )
    try:
        policy.check_request(request)  # an output cap means nothing here: the result is unused
    except PolicyDenied as exc:
        raise denied(exc.denial) from exc


def end_user(request: HttpRequest, data: dict) -> str | None:
    """The end user a request is for: the body's `user`, else the x-gateway-user header."""
    user = data.get("user")
    if not isinstance(user, str) or not user:
        metadata = data.get("metadata")  # Anthropic's Messages API: metadata.user_id
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user, str) or not user:
        user = request.headers.get(USER_HEADER)
    return user or None


def default_output_tokens(routes: Sequence[Route]) -> int:
    """What a request that names no output limit reserves: the default, or less where every
    candidate's own maximum is known and lower."""
    limits = [r.capabilities.max_output_tokens for r in routes]
    default = settings.GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS
    if limits and None not in limits:
        return min(default, max(limits))
    return default


def _priciest(routes: Sequence[Route], attr: str) -> Decimal:
    return max((getattr(r, attr) for r in routes), default=Decimal(0))


# The requests that find the same counters missing at once (a new month, a Redis restart) share
# one database query instead of queueing one each on the bounded pool.
_seeding: SingleFlight[list[int]] = SingleFlight()


async def _seed(scopes: Sequence[BudgetScope], period: str, tz: str) -> list[int]:
    """Budget spend from Postgres (the truth), for counters the state store has lost."""
    scopes = tuple(scopes)
    return await _seeding.run((scopes, period), lambda: seed_spend(scopes, period, tz))


@tracing.traced("gateway.admission")
async def admit(
    ctx: RequestContext,
    routes: Sequence[Route],
    *,
    prompt_tokens: int,
    output_tokens: int,
    user: str | None,
) -> int:
    """Reserve limits and budgets for this request; the output tokens it may ask for."""
    policy = ctx.policy
    limits = policy.limit_scopes(ctx.requested_model, user)
    if not limits and not policy.budgets:
        return output_tokens
    # Prices are USD per 1M tokens, so a token costs `price` micro-dollars.
    request = admission.AdmissionRequest(
        request_id=ctx.request_id,
        limits=limits,
        tokens=prompt_tokens + output_tokens,
        budgets=policy.budgets,
        timezone=policy.timezone,
        prompt_micros=math.ceil(prompt_tokens * _priciest(routes, "input_cost_per_mtok")),
        output_tokens=output_tokens,
        output_price=int(_priciest(routes, "output_cost_per_mtok") * 1_000_000),
    )
    try:
        found = await admission.admit(request, seed=_seed)
    except admission.AdmissionRefused as exc:
        raise refused(exc) from exc
    except admission.AdmissionUnavailable as exc:
        raise ServiceUnavailable.of("state store") from exc
    ctx.admission = found
    if found is None:
        return output_tokens
    return found.granted_output_tokens


def refused(exc: "admission.AdmissionRefused") -> RateLimited:
    headers = dict(exc.headers)
    if exc.retry_after_s > 0:
        headers["retry-after"] = str(exc.retry_after_s)
    if exc.kind == "budget" or exc.retry_after_s <= 0:
        # Retrying soon cannot help: the budget's period must end, or the request is larger
        # than the limit itself. The OpenAI SDKs honour this header.
        headers["x-should-retry"] = "false"
    return RateLimited(exc.message, code=exc.code, headers=headers)


def response_headers(ctx: RequestContext) -> dict[str, str]:
    found = ctx.admission
    if found is None:
        return {}
    headers = dict(found.headers)
    if found.warnings:
        headers[BUDGET_WARNING_HEADER] = "; ".join(found.warnings)
    return headers
