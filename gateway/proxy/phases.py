"""Where one request's time goes: its phases, timed on the hot path and observed once it settles.

    parse      from arrival: reading the body, building the request, parsing and validating
               the JSON (two stretches: body and URL before authentication, JSON after policy)
    auth       authenticating the key
    policy     the effective policy, the privacy mode's content handling; candidates, routing
               rules, the compliance gate, the fallback chain and its health read (one Redis
               round trip); planning a translation for routes of another wire format
    admission  the one round trip that admits rate limits and budgets
    upstream   calling upstream up to its response (a stream: its first event), retries and
               fallbacks included
    respond    building and sending the client's response (a stream: relaying it to the end)
    settle     the settlement: reservations replaced by actual usage, the usage event

Per phase change the request pays one `perf_counter()` and a few attribute writes
(RequestContext.enter); each phase is counted once when the request settles, after its response
has gone out, in lists that batched.py writes to the histogram every second.

A request that ends early (a refusal, an upstream error) observes only the phases it entered:
the time up to the failure goes to the phase that failed, and its error response is no
`respond`. A request without a tenant (a bad key) has no settlement, so no `settle`.
"""

from prometheus_client import Histogram

from .batched import FINE_BUCKETS, BatchedHistogram

PARSE, AUTH, POLICY, ADMISSION, UPSTREAM, RESPOND, SETTLE = range(7)
NAMES = ("parse", "auth", "policy", "admission", "upstream", "respond", "settle")

# An upstream call or a stream's relay that takes longer than a second lands in the last buckets.
BUCKETS = (*FINE_BUCKETS, 5.0, 30.0)

PHASE_SECONDS = Histogram(
    "gateway_phase_seconds",
    "Time per request phase (parse, auth, policy, admission, upstream, respond, settle); a "
    "request that ends early observes only the phases it reached.",
    ["phase"],
    buckets=BUCKETS,
)
_BATCHED = BatchedHistogram(PHASE_SECONDS, BUCKETS, NAMES)


def observe(spent: list) -> None:
    """Count each phase that ran (a None in `spent` did not); written out by batched.flush."""
    observe_one = _BATCHED.observe
    for index, seconds in enumerate(spent):
        if seconds is not None:
            observe_one(index, seconds)
