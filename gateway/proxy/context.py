"""One request's journey, and its settlement into exactly one usage event.

Where the event goes, first that works: the Redis usage stream; the database directly (the
bounded pool of infra/db.py); the local spool (infra/spool.py), replayed into either of them by
`usage_replayer` once one is back. So an event is lost only if the local disk refuses it too.
"""

import asyncio
import logging
import time
import uuid
from decimal import Decimal

from django.conf import settings

from billing.pricing import cost_usd
from billing.services import usage_records_ingest
from infra import usage_event
from infra.db import db_call_bounded
from infra.spool import Replayer, get_spool
from infra.state import StateUnavailable, get_state
from policies.admission import Admission
from policies.admission import settle as settle_admission
from policies.engine import EffectivePolicy
from policies.types import usd_to_micros
from routing.providers import Usage
from routing.selectors import DEFAULT_GROUP, Group, Route
from tenants.selectors import KeyPrincipal

from . import content, metrics, phases, tracing

log = logging.getLogger("gateway.proxy")

# Set by gateway.asgi when the request enters the process, so overhead includes body reading.
SCOPE_START = "gateway.start"


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestContext:
    __slots__ = (
        "admission",
        "attempts",
        "capture",
        "created_at",
        "endpoint",
        "error_type",
        "fallbacks",
        "health_probe",
        "phase",
        "phase_at",
        "phase_s",
        "policy",
        "principal",
        "redactions",
        "request_id",
        "requested_model",
        "route",
        "route_group",
        "settled",
        "started",
        "status",
        "stream",
        "tags",
        "ttft_ms",
        "upstream_ms",
        "usage",
    )

    def __init__(self, endpoint: str, started: float | None = None) -> None:
        self.request_id = new_request_id()
        self.started = started if started is not None else time.perf_counter()
        self.created_at = time.time()
        self.endpoint = endpoint
        self.principal: KeyPrincipal | None = None
        self.policy: EffectivePolicy | None = None
        # What admission reserved (policies/admission.py); settled with the usage event.
        self.admission: Admission | None = None
        self.requested_model = ""
        self.route: Route | None = None
        # The model group that served the request (a routing rule may have chosen it).
        self.route_group: Group = DEFAULT_GROUP
        self.stream = False
        self.usage = Usage()
        self.upstream_ms = 0.0
        self.ttft_ms: float | None = None
        self.attempts = 0
        # Failed attempts, in order: "provider/model: error kind" (calls.py).
        self.fallbacks: list[str] = []
        # Cost allocation tags (tags.py): use case, feature, environment.
        self.tags: dict[str, str] = {}
        # The route in use holds a half-open breaker's probe slot (routing/health.py), freed
        # by its outcome report.
        self.health_probe = False
        # Placeholders put into the prompt before it went upstream (policy scrub_prompts);
        # None when the policy does not scrub prompts.
        self.redactions: int | None = None
        # What the privacy mode keeps of the content (privacy.py); None in `metadata` mode.
        self.capture = None
        self.status = 200
        self.error_type = ""
        self.settled = False
        # The phase in progress since `phase_at` (perf_counter), and the seconds spent in each
        # phase so far (None: not entered); phases.py names them. Parse starts at arrival.
        self.phase: int | None = phases.PARSE
        self.phase_at = self.started
        self.phase_s: list[float | None] = [None] * len(phases.NAMES)

    def enter(self, phase: int | None) -> None:
        """End the phase in progress and start `phase` (None: the request stops being timed)."""
        now = time.perf_counter()
        current = self.phase
        if current is not None:
            spent = self.phase_s[current]
            self.phase_s[current] = (
                now - self.phase_at if spent is None else spent + now - self.phase_at
            )
        self.phase = phase
        self.phase_at = now

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def overhead_ms(self) -> float:
        return max(0.0, self.elapsed_ms() - self.upstream_ms)

    def cost(self) -> Decimal:
        return cost_usd(self.route, self.usage) if self.route is not None else Decimal(0)

    def fail(self, status: int, error_type: str) -> None:
        self.status = status
        self.error_type = error_type

    def event(self, content: usage_event.Content | None = None) -> usage_event.UsageEvent:
        p, r, u = self.principal, self.route, self.usage
        return usage_event.UsageEvent(
            **{
                "request_id": self.request_id,
                "created_at": self.created_at,
                "organization_id": p.org_id,
                "team_id": p.team_id,
                "team_slug": p.team_slug,
                "project_id": p.project_id,
                "api_key_id": p.key_id,
                "key_prefix": p.key_prefix,
                "user_id": p.user_id,
                "endpoint": self.endpoint,
                "requested_model": self.requested_model,
                "deployment_id": r.deployment_id if r else None,
                "provider_id": r.provider_id if r else None,
                "provider_name": r.provider_name if r else "",
                "upstream_model": r.upstream_model if r else "",
                # The vocabulary region (routing/regions.py) when known, else as configured.
                "region": (r.residency or r.region) if r else "",
                "stream": self.stream,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cached_tokens": u.cached_tokens,
                "usage_estimated": u.estimated,
                "latency_ms": round(self.elapsed_ms(), 3),
                "upstream_ms": round(self.upstream_ms, 3),
                "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
                "attempts": self.attempts,
                "status_code": self.status,
                "error_type": self.error_type,
                "cost_usd": self.cost(),
                "reserved_tokens": self.admission.reserved_tokens if self.admission else 0,
                "fallbacks": "; ".join(self.fallbacks),
                "compliance_basis": r.compliance_basis if r else "",
                "tags": self.tags,
                "redactions": self.redactions or 0,
                "content": content,
            }
        )

    @tracing.traced("gateway.settle")
    async def settle(self) -> None:
        """Emit the usage event, once, and observe the request's phases (phases.py).
        Unauthenticated requests have no tenant and no row: only their phases are observed."""
        if self.settled:
            return
        self.settled = True
        if self.principal is None:
            self.enter(None)
            metrics.phases_observed(self.phase_s)
            return
        self.enter(phases.SETTLE)
        try:
            await self._settle()
        finally:
            self.enter(None)
            metrics.phases_observed(self.phase_s)

    async def _settle(self) -> None:
        metrics.request_settled(self)
        # Hashed or scrubbed here, in this process: raw text of a team that did not opt in to
        # `full` never reaches the stream, the spool or the database.
        found = None if self.capture is None else await content.build(self.capture, self.request_id)
        event = self.event(found)
        raw = usage_event.encode(event)
        try:
            if self.admission is not None:
                # One round trip: the reservation becomes the actual usage and cost, and the
                # usage event joins the stream.
                await settle_admission(
                    self.admission,
                    tokens=self.usage.input_tokens + self.usage.output_tokens,
                    cost_micros=usd_to_micros(event.cost_usd),
                    usage_event=raw,
                )
            else:
                await get_state().append_usage(raw)
            return
        except StateUnavailable:
            # The reservation lapses by its TTL; billing reconciles spend from Postgres.
            log.warning("usage stream unavailable; writing request %s directly", self.request_id)
        try:
            await db_call_bounded(usage_records_ingest, events=[event])
            return
        except Exception as exc:
            # If the write did land after all (a timeout), the replay below skips the row.
            log.warning(
                "usage row for request %s not written (%s); spooling it", self.request_id, exc
            )
        try:
            get_spool().append(raw)
        except OSError:
            log.exception("usage event for request %s lost: the spool refused it", self.request_id)
            return
        usage_replayer.ensure_started()


# Settlements under way. Strong references (the event loop keeps only weak ones), and what the
# lifespan shutdown waits for: a request the server cancels at its graceful timeout has its
# usage event written by a task that outlives it, and the loop must not end before that task.
_settling: set[asyncio.Task] = set()


async def settle_shielded(ctx: RequestContext) -> None:
    """Settle even if the caller is cancelled (a client hanging up, the server stopping)."""
    task = asyncio.ensure_future(ctx.settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)
    await asyncio.shield(task)


async def settle_pending(timeout_s: float = 5.0) -> int:
    """At shutdown: wait (bounded) for the settlements still running, so their usage events
    reach the stream before the event loop ends. Returns how many were waited for."""
    pending = list(_settling)
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)
    return len(pending)


# Replaying a spooled batch may take longer than one lookup; the bounded pool's usual wait
# limit is for requests that someone is waiting on.
_REPLAY_DB_TIMEOUT_S = 30.0


async def deliver_spooled_usage(records: list[bytes]) -> None:
    """Hand spooled events to a store: the stream if Redis is back, else the database.

    Raises when neither takes them, so the spool keeps them for the next round.
    """
    events: list[usage_event.UsageEvent] = []
    valid: list[bytes] = []
    for raw in records:
        try:
            events.append(usage_event.decode(raw, tolerate_unknown=True))
            valid.append(raw)
        except (usage_event.DecodeError, usage_event.ValidationError) as exc:
            # A line torn by a crash mid-write would block the file forever; say so, skip it.
            log.error("dropping unreadable spooled usage event: %s", exc)
    state = get_state()
    try:
        for raw in valid:
            await state.append_usage(raw)
        return
    except StateUnavailable:
        pass
    await db_call_bounded(usage_records_ingest, events=events, timeout_s=_REPLAY_DB_TIMEOUT_S)


usage_replayer = Replayer(
    spool=get_spool,
    sink=deliver_spooled_usage,
    interval_s=lambda: settings.GATEWAY_SPOOL_REPLAY_INTERVAL_S,
)
