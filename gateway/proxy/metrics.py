"""Prometheus metrics: what each request adds, counted where it ends.

Three hooks feed them, each a few dictionary look-ups and increments (no I/O on the hot path):
- `request_settled(ctx)`, from RequestContext.settle: every request that has a tenant (the same
  set as the usage log): requests, tokens, cost, latency and gateway overhead, limit hits and
  budget denials;
- `request_refused(exc)`, from gateway/proxy/refusals.py: requests that end without a usage row
  (no key, a bad key, a body too large...), and among them the authentication failures;
- `upstream_failed(route, kind)`, from gateway/proxy/calls.py: one per failed upstream attempt,
  retries and fallbacks included;
- `phases_observed(spent)`, also from RequestContext.settle, for every request that reached the
  pipeline (refused ones too): its phase timings (phases.py; batched, see batched.py).
Breaker states are no counter: gateway/metrics.py reads them from the shared health
state at scrape time.

Several web processes: prometheus_client's multiprocess mode. When PROMETHEUS_MULTIPROC_DIR is
set (it must be before prometheus_client is first imported, so in the environment the server
starts with), each process writes its values to memory-mapped files there and a scrape of any
process sums them all. The launcher empties the directory before the workers start
(`prepare_multiproc_dir`, run by `python -m gateway.startup`, which `make serve` and the
container's entrypoint run first). Without it (`make run`, one process) the values live in the
process's own registry.

Labels are bounded by configuration, never by what a client sends: team slug, the public model
name of the deployment that served the request (a catch-all routing rule would otherwise let a
client mint a series per model name it makes up), provider name, endpoint, status. Never a key,
a user or a project. Error types can come from an upstream's error body, so they are capped.
"""

import functools
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prometheus_client import Counter, Histogram, disable_created_metrics

from . import phases, tracing

if TYPE_CHECKING:
    from gateway.proxy.errors import GatewayError
    from routing.selectors import Route

log = logging.getLogger("gateway.metrics")


class Settled(Protocol):
    """What the settle hook reads of a request: gateway.proxy.context.RequestContext, named by
    its shape because context.py imports this module."""

    status: int
    error_type: str
    endpoint: str
    upstream_ms: float
    route: "Route | None"
    usage: object
    principal: object

    def elapsed_ms(self) -> float: ...

    def cost(self) -> Decimal: ...


# No `<name>_created` series: multiprocess mode has none, so one process would expose what
# several do not; and a scrape is smaller without them.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A process started with the variable set (and without the launcher: a bare `uvicorn`) writes
# there from its first labelled value; the directory must exist by then.
if os.environ.get(MULTIPROC_ENV):
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

# Seconds. Whole requests: from a fast refusal to a long stream.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Seconds. The gateway's own time (latency minus time spent waiting on upstreams): usually well
# under a millisecond, so the buckets start at 100 µs.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = Counter(
    "gateway_requests",
    "Requests with a tenant (as in the usage log), by endpoint, status and error type.",
    ["endpoint", "status_class", "status", "error_type"],
)
TOKENS = Counter(
    "gateway_tokens", "Tokens, by direction (input/output) and model.", ["direction", "model"]
)
COST = Counter("gateway_cost_usd", "Cost in US dollars, by team and model.", ["team", "model"])
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Request latency, arrival to the last byte (a stream: its end).",
    ["endpoint", "status_class"],
    buckets=LATENCY_BUCKETS,
)
OVERHEAD = Histogram(
    "gateway_overhead_seconds",
    "The gateway's own time per request: latency minus upstream time.",
    ["endpoint"],
    buckets=OVERHEAD_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Failed upstream attempts (each retry and fallback counts), by provider and error kind.",
    ["provider", "kind"],
)
LIMIT_HITS = Counter(
    "gateway_limit_hits",
    "Requests refused by a rate limit (429 rate_limit_exceeded), by team.",
    ["team"],
)
BUDGET_DENIALS = Counter(
    "gateway_budget_denials",
    "Requests refused by a hard budget (429 budget_exceeded), by team.",
    ["team"],
)
REFUSALS = Counter(
    "gateway_refusals",
    "Requests that end without a usage row (before the caller is known), by status and reason.",
    ["status", "reason"],
)
SNAPSHOT_BUILDS = Histogram(
    "gateway_snapshot_build_seconds",
    "Snapshot builds (routing table, policy table, compliance table), timed in the database "
    "pool's thread that runs them.",
    ["name"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures",
    "Failed authentications (missing, invalid, revoked or expired keys; throttled addresses).",
    ["reason"],
)

# Authentication refusals that are failures to count (the codes of gateway/proxy/auth.py and
# throttle.py).
AUTH_REASONS = frozenset(
    {
        "invalid_api_key",
        "revoked_api_key",
        "expired_api_key",
        "too_many_failed_authentications",
    }
)
# An upstream may name its own error codes: past this many distinct ones a process counts the
# rest as "other", so a talkative provider cannot grow the series without bound.
MAX_ERROR_TYPES = 100
_MAX_LABEL_LEN = 64
OTHER = "other"

_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
# Label children by their values: prometheus_client's labels() validates and locks on every
# call; a dict look-up is a fraction of that.
_children: dict[tuple, object] = {}
_error_types: set[str] = set()
_failed_once = False


def _child(metric, *values: str):
    key = (id(metric), *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def _error_type(value: str) -> str:
    if value in _error_types or not value:
        return value
    if len(_error_types) >= MAX_ERROR_TYPES:
        return OTHER
    value = value[:_MAX_LABEL_LEN]
    _error_types.add(value)
    return value


def _guarded(record):
    """Metrics never fail a request: an error is logged once, and the request goes on."""

    @functools.wraps(record)
    def hook(*args) -> None:
        global _failed_once
        try:
            record(*args)
        except Exception:
            if not _failed_once:
                _failed_once = True
                log.exception("recording metrics failed; later failures are not logged")

    return hook


def _outcome_children(endpoint: str, status: int, error_type: str) -> tuple:
    """The request counter and the two histograms of one (endpoint, status, error type)."""
    key = (endpoint, status, error_type)
    found = _outcomes.get(key)
    if found is None:
        status_class = _CLASSES.get(status // 100, "other")
        found = _outcomes[key] = (
            REQUESTS.labels(endpoint, status_class, str(status), error_type),
            LATENCY.labels(endpoint, status_class),
            OVERHEAD.labels(endpoint),
        )
    return found


def _usage_children(team: str, model: str) -> tuple:
    """Input and output token counters and the cost counter of one (team, model)."""
    key = (team, model)
    found = _usages.get(key)
    if found is None:
        found = _usages[key] = (
            TOKENS.labels("input", model),
            TOKENS.labels("output", model),
            COST.labels(team, model),
        )
    return found


# One look-up per request for each group of children that move together.
_outcomes: dict[tuple, tuple] = {}
_usages: dict[tuple, tuple] = {}


@_guarded
def request_settled(ctx: Settled) -> None:
    """Count one request that has a tenant, as it settles (once per request)."""
    status = ctx.status
    error_type = ctx.error_type
    if error_type:
        error_type = _error_type(error_type)
    requests, latency, overhead = _outcome_children(ctx.endpoint, status, error_type)
    requests.inc()
    elapsed_ms = ctx.elapsed_ms()
    latency.observe(elapsed_ms / 1000)
    overhead.observe(max(0.0, elapsed_ms - ctx.upstream_ms) / 1000)
    route = ctx.route
    if route is not None:
        usage = ctx.usage
        if usage.input_tokens or usage.output_tokens:
            tokens_in, tokens_out, cost_usd = _usage_children(
                ctx.principal.team_slug, route.model_name
            )
            if usage.input_tokens:
                tokens_in.inc(usage.input_tokens)
            if usage.output_tokens:
                tokens_out.inc(usage.output_tokens)
            cost = ctx.cost()
            if cost:
                cost_usd.inc(float(cost))
    if status == 429:
        if error_type == "rate_limit_exceeded":
            _child(LIMIT_HITS, ctx.principal.team_slug).inc()
        elif error_type == "budget_exceeded":
            _child(BUDGET_DENIALS, ctx.principal.team_slug).inc()
    if tracing.ENABLED:
        tracing.annotate(ctx)


@_guarded
def request_refused(exc: "GatewayError") -> None:
    """Count one request refused without a usage row; an authentication failure also as such."""
    reason = _error_type(exc.error_type)
    _child(REFUSALS, str(exc.status), reason).inc()
    if exc.status == 401 or reason in AUTH_REASONS:
        _child(AUTH_FAILURES, reason).inc()


@_guarded
def upstream_failed(route: "Route", kind: str) -> None:
    """Count one failed upstream attempt."""
    _child(UPSTREAM_ERRORS, route.provider_name, kind).inc()


@_guarded
def phases_observed(spent: list) -> None:
    """Count one request's phases (None: not reached)."""
    phases.observe(spent)


@_guarded
def snapshot_built(name: str, seconds: float) -> None:
    """One snapshot build (infra/snapshot.py's observer, registered by gateway/asgi.py)."""
    _child(SNAPSHOT_BUILDS, name).observe(seconds)


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiproc_dir() -> Path | None:
    """Create PROMETHEUS_MULTIPROC_DIR and empty it of a previous run's files, before the
    workers start: counts of processes that no longer exist would otherwise be summed forever.
    Only the `*.db` files prometheus_client writes are removed, nothing else in the directory."""
    where = multiproc_dir()
    if where is None:
        return None
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path
