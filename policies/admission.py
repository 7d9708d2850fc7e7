"""Admission: every rate limit and budget of a request, checked and reserved in one round trip.

`admit` runs one script (policies/admission_scripts.py) over all of the request's scopes: GCRA
RPM/TPM per scope, and a reservation of the worst-case cost against every budget. All or
nothing: a refusal by any scope writes nothing. `settle` replaces the reservations by what the
request used and appends its usage event, again in one round trip; it must run on every path
that admitted (success, upstream error, cancellation). A process that dies between the two
leaves a reservation that lapses with its bucket (GATEWAY_BUDGET_RESERVATION_TTL_S).

Failure modes:
- A budget's spent counter missing (Redis flushed, a new period): the script says which; the
  caller's `seed` reads them from Postgres, and the script runs again with them, setting each
  only if still missing (another process may have seeded it meanwhile).
- Redis unreachable: rate limits run the same script on a process-local store (per-process
  limiters, `Admission.local`); hard budgets refuse with AdmissionUnavailable (503) unless
  GATEWAY_BUDGET_FAIL_OPEN; soft budgets are not checked.
"""

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from django.conf import settings

from infra.state import StateStore, StateUnavailable, get_state
from infra.state.memory import MemoryStateStore

from . import admission_scripts as scripts
from .budget_keys import (
    BUCKET_S,
    bucket_of,
    live_buckets,
    reservation_bucket_ttl_s,
    reservation_key,
    spent_key,
)
from .periods import counter_ttl_s, period_of, seconds_left
from .ratelimit_headers import ratelimit_headers
from .types import BudgetScope, LimitScope

__all__ = [
    "Admission",
    "AdmissionRefused",
    "AdmissionRequest",
    "AdmissionUnavailable",
    "Admitter",
    "Seed",
    "admit",
    "clear_process_state",
    "settle",
    "underestimates",
]

log = logging.getLogger(__name__)

# After Redis failed, admit from the process-local store this long before trying Redis again,
# so an outage costs one failed attempt per second, not one per request.
_SHARED_RETRY_S = 1.0
# Outage warnings are logged at most this often (per kind), not once per request.
_WARN_EVERY_S = 60.0

# seed(scopes, period, timezone) -> each scope's spend in the period, micro-dollars, in order.
Seed = Callable[[tuple[BudgetScope, ...], str, str], Awaitable[Sequence[int]]]


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    request_id: str
    limits: tuple[LimitScope, ...]
    tokens: int  # estimated prompt tokens + output tokens asked (or the default)
    budgets: tuple[BudgetScope, ...]
    timezone: str  # the organization's, for the period
    prompt_micros: int  # estimated prompt cost at the priciest candidate, rounded up
    output_tokens: int  # output tokens asked (or the default)
    output_price: int  # micro-dollars per 1M output tokens at the priciest candidate


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a request's scopes that does not change within a minute: key names and
    script arguments, built once per (scopes, period, bucket) and cached."""

    keys: tuple[str, ...]
    static: str  # ADMIT's numbers after the per-request head, comma-separated
    limits: tuple[tuple[LimitScope, int], ...]  # (scope, dimension) per limit key
    budgets: tuple[BudgetScope, ...]
    settle_keys: tuple[str, ...]
    settle_limits: tuple[int, ...]  # the TPM of each TPM key, in settle_keys' order
    settle_static: str  # settle_limits as SETTLE's numbers after its head: ",<tpm>,..."


@dataclass(frozen=True, slots=True)
class Admission:
    granted_output_tokens: int  # < output_tokens only when a budget clamped it
    reserved_micros: int
    reserved_tokens: int
    period: str
    bucket: int
    headers: dict[str, str]  # x-ratelimit-{limit,remaining,reset}-{requests,tokens}
    warnings: tuple[str, ...]  # soft budgets over their limit
    local: bool  # limits checked by the per-process fallback (Redis down)
    plan: _Plan = field(repr=False, compare=False)


class AdmissionRefused(Exception):
    """A limit or a hard budget refuses the request: 429."""

    def __init__(self, kind: str, message: str, retry_after_s: int, headers: dict[str, str]):
        super().__init__(message)
        self.kind = kind  # "requests" | "tokens" | "budget"
        self.message = message
        self.retry_after_s = retry_after_s  # 0: retrying will not help (the request is too big)
        self.headers = headers

    @property
    def code(self) -> str:
        return "budget_exceeded" if self.kind == "budget" else "rate_limit_exceeded"


class AdmissionUnavailable(Exception):
    """A hard budget cannot be checked (Redis down, or its spend unknown): 503, fail closed."""


def _usd(micros: int) -> str:
    amount = Decimal(micros).scaleb(-6)
    cents = amount.quantize(Decimal("0.01"))
    return f"${cents}" if cents == amount else f"${amount.normalize():f}"


@lru_cache(maxsize=256)
def _period(tz: str, minute: int) -> str:
    # Zone offsets are whole minutes, so a minute never straddles two periods. (A reservation
    # bucket may: its key carries the period, so each period's buckets are its own.)
    return period_of(minute * 60, tz)


@lru_cache(maxsize=4096)
def _plan(
    limits: tuple[LimitScope, ...],
    budgets: tuple[BudgetScope, ...],
    period: str,
    bucket: int,
    reservation_ttl_s: float,
    min_clamped: int,
) -> _Plan:
    keys: list[str] = []
    dims: list[tuple[LimitScope, int]] = []
    per_limit: list[int] = []
    tpm: list[tuple[str, int]] = []
    for scope in limits:
        for dim, limit, suffix in ((1, scope.rpm, ":req"), (2, scope.tpm, ":tok")):
            if limit:
                keys.append(scope.key + suffix)
                dims.append((scope, dim))
                per_limit += (dim, limit)
                if dim == 2:
                    tpm.append((scope.key + suffix, limit))
    buckets = live_buckets(bucket * BUCKET_S, reservation_ttl_s)
    per_budget: list[int] = []
    settle_budget_keys: list[str] = []
    for scope in budgets:
        stem = scope.key
        keys.append(spent_key(stem, period))
        keys += (reservation_key(stem, period, b) for b in buckets)
        mode = (
            scripts.SOFT if not scope.hard else scripts.HARD_CLAMP if scope.clamp else scripts.HARD
        )
        per_budget += (scope.limit_micros, mode)
        settle_budget_keys += (spent_key(stem, period), reservation_key(stem, period, bucket))
    bucket_ttl_s = reservation_bucket_ttl_s(reservation_ttl_s)
    static = (len(dims), len(budgets), len(buckets), min_clamped, bucket_ttl_s)
    return _Plan(
        keys=tuple(keys),
        static=",".join(map(str, (*static, *per_limit, *per_budget))),
        limits=tuple(dims),
        budgets=budgets,
        settle_keys=(*(k for k, _ in tpm), *settle_budget_keys),
        settle_limits=tuple(limit for _, limit in tpm),
        settle_static="".join(f",{limit}" for _, limit in tpm),
    )


class Admitter:
    """Admission against one state store, with its process-local fallback."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        # The embedded store is already process-local and never unreachable.
        self.local_store = store if isinstance(store, MemoryStateStore) else MemoryStateStore()
        self._shared_retry_at = 0.0
        self._warned_at: dict[str, float] = {}

    async def admit(self, req: AdmissionRequest, *, seed: Seed) -> Admission | None:
        if not req.limits and not req.budgets:
            return None
        now = self.clock()
        bucket = bucket_of(now)
        period = _period(req.timezone, int(now // 60))
        ttl, min_clamped = (
            settings.GATEWAY_BUDGET_RESERVATION_TTL_S,
            settings.GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS,
        )
        head = f"{req.tokens},{req.output_tokens},{req.output_price},{req.prompt_micros}"
        if time.monotonic() >= self._shared_retry_at:
            plan = _plan(req.limits, req.budgets, period, bucket, ttl, min_clamped)
            try:
                args = (f"{head},0,{plan.static}",)
                result = await self.store.run_script(scripts.ADMIT, plan.keys, args)
                if result[0] == scripts.MISSING:
                    args = (head, period, now)
                    result = await self._seed_and_admit(result, req, plan, args, seed)
            except StateUnavailable as exc:
                self._shared_retry_at = time.monotonic() + _SHARED_RETRY_S
                self._warn(
                    "shared", "state store unreachable; rate limits are per process: %s", exc
                )
            else:
                return self._decide(result, req, plan, period, bucket, now, local=False)
        return self._admit_locally(req, period, bucket, now, head, ttl, min_clamped)

    async def _seed_and_admit(self, result, req, plan, at, seed: Seed):
        head, period, now = at
        for _ in range(2):
            indexes = [int(i) for i in result[1:]]
            missing = tuple(plan.budgets[i] for i in indexes)
            try:
                found = await seed(missing, period, req.timezone)
                values = [int(v) for v in found]
                if len(values) != len(missing):
                    raise ValueError(f"seed returned {len(values)} values for {len(missing)}")
            except Exception as exc:
                hard = [scope for scope in missing if scope.hard]
                if hard and not settings.GATEWAY_BUDGET_FAIL_OPEN:
                    self._warn("seed", "cannot read budget spend to seed counters: %r", exc)
                    raise AdmissionUnavailable(
                        f"{hard[0].label} budget cannot be checked: its spend is unavailable"
                    ) from exc
                if hard:
                    self._fail_open_warning()
                values = [scripts.COUNT_AS_ZERO] * len(missing)
            seeds = [scripts.NO_SEED] * len(plan.budgets)
            for index, value in zip(indexes, values, strict=True):
                seeds[index] = value
            ttl = counter_ttl_s(now, req.timezone)
            args = (f"{head},1,{plan.static},{ttl},{','.join(map(str, seeds))}",)
            result = await self.store.run_script(scripts.ADMIT, plan.keys, args)
            if result[0] != scripts.MISSING:
                return result
        # Counters set a moment ago are gone again: something keeps flushing Redis.
        raise AdmissionUnavailable("budget counters cannot be kept in the state store")

    def _admit_locally(self, req, period, bucket, now, head, ttl, min_clamped) -> Admission:
        hard = [scope for scope in req.budgets if scope.hard]
        if hard:
            if not settings.GATEWAY_BUDGET_FAIL_OPEN:
                raise AdmissionUnavailable(
                    f"{hard[0].label} budget cannot be checked: the state store is unreachable"
                )
            self._fail_open_warning()
        plan = _plan(req.limits, (), period, bucket, ttl, min_clamped)
        if plan.keys:
            args = (f"{head},0,{plan.static}",)
            result = self.local_store.run_script_sync(scripts.ADMIT, plan.keys, args)
        else:
            result = [scripts.ADMITTED, req.output_tokens, 0, req.tokens, -1, 0, 0, -1, 0, 0]
        return self._decide(result, req, plan, period, bucket, now, local=True)

    def _decide(self, result, req, plan: _Plan, period, bucket, now, *, local) -> Admission:
        code = int(result[0])
        if code == scripts.ADMITTED:
            warnings = tuple(
                _budget_message(plan.budgets[int(result[at])], period, int(result[at + 1]), req)
                for at in range(10, len(result), 2)
            )
            return Admission(
                granted_output_tokens=int(result[1]),
                reserved_micros=int(result[2]) if plan.budgets else 0,
                reserved_tokens=int(result[3]),
                period=period,
                bucket=bucket,
                headers=ratelimit_headers(result[4:10]),
                warnings=warnings,
                local=local,
                plan=plan,
            )
        if code in (scripts.LIMITED_REQUESTS, scripts.LIMITED_TOKENS):
            scope, dim = plan.limits[int(result[1])]
            kind, limit = ("requests", scope.rpm) if dim == 1 else ("tokens", scope.tpm)
            raise AdmissionRefused(
                kind,
                f"{scope.label} allows {limit} {kind} per minute",
                retry_after_s=max(1, math.ceil(int(result[2]) / 1_000_000)),
                headers=ratelimit_headers(result[3:9]),
            )
        if code == scripts.TOO_LARGE:
            scope, _ = plan.limits[int(result[1])]
            raise AdmissionRefused(
                "tokens",
                f"{scope.label} allows {scope.tpm} tokens per minute; this request alone is "
                f"estimated at {int(result[2])} tokens",
                retry_after_s=0,
                headers={},
            )
        if code == scripts.OVER_BUDGET:
            scope = plan.budgets[int(result[1])]
            raise AdmissionRefused(
                "budget",
                _budget_message(scope, period, int(result[2]), req),
                retry_after_s=max(1, math.ceil(seconds_left(now, req.timezone))),
                headers={},
            )
        raise AdmissionUnavailable(f"unexpected admission result {result!r}")

    async def settle(
        self, admission: Admission, *, tokens: int, cost_micros: int, usage_event: bytes
    ) -> None:
        plan = admission.plan
        delta = tokens - admission.reserved_tokens
        if delta > 0:
            _underestimated[0] += 1
            _underestimated[1] += delta
        ntok = len(plan.settle_limits)
        nb = 0 if admission.local else len(plan.budgets)
        head = f"{ntok},{nb},{delta},{admission.reserved_micros},{cost_micros}"
        args = (head + plan.settle_static,)
        if admission.local:
            if ntok and delta:
                self.local_store.run_script_sync(scripts.SETTLE, plan.settle_keys[:ntok], args)
            await self.store.append_usage(usage_event)
        elif nb or (ntok and delta):
            await self.store.run_script_and_append(
                scripts.SETTLE, plan.settle_keys, args, usage_event
            )
        else:
            await self.store.append_usage(usage_event)

    def _fail_open_warning(self) -> None:
        self._warn(
            "fail-open",
            "GATEWAY_BUDGET_FAIL_OPEN is on: admitting requests WITHOUT checking hard budgets "
            "(state store or spend unavailable); spend may exceed them",
            level=logging.ERROR,
        )

    def _warn(self, kind: str, message: str, *args, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(kind, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            self._warned_at[kind] = now
            log.log(level, message, *args)


def _budget_message(scope: BudgetScope, period: str, left: int, req: AdmissionRequest) -> str:
    what = f"{scope.label} budget of {_usd(scope.limit_micros)} for {period}"
    if left <= 0:
        return f"{what} is spent"
    worst = req.prompt_micros + (req.output_tokens * req.output_price + 999_999) // 1_000_000
    return f"{what} has {_usd(left)} left, less than this request's worst case of {_usd(worst)}"


# Requests that used more tokens than they reserved (the estimate was low), and by how many
# tokens in all, in this process: settle charged the difference to the TPM limits.
_underestimated = [0, 0]
_default: Admitter | None = None


def underestimates() -> tuple[int, int]:
    """(requests, tokens) this process under-estimated since it started."""
    return _underestimated[0], _underestimated[1]


def _admitter() -> Admitter:
    global _default
    if _default is None:
        _default = Admitter(get_state())
    return _default


async def admit(req: AdmissionRequest, *, seed: Seed) -> Admission | None:
    """Check and reserve every limit and budget of `req` at once; None if it has none.
    Raises AdmissionRefused (429) or AdmissionUnavailable (503)."""
    return await _admitter().admit(req, seed=seed)


async def settle(
    admission: Admission, *, tokens: int, cost_micros: int, usage_event: bytes
) -> None:
    """Replace the reservations by actual use and append the usage event, in one round trip.
    Raises StateUnavailable (Redis down): store the event another way; the reservation lapses."""
    await _admitter().settle(
        admission, tokens=tokens, cost_micros=cost_micros, usage_event=usage_event
    )


def clear_process_state() -> None:
    """Forget the per-process limiters and the outage state (tests; a fresh start)."""
    global _default
    _default = None
