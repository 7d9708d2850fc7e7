"""The budget check Celery beat runs every GATEWAY_BUDGET_CHECK_INTERVAL_S (billing/tasks.py).

Three steps, each useful on its own, so one failing does not stop the next:
1. refresh the spend ledger from usage records (Postgres: without it there is nothing to do);
2. reconcile the Redis spend counters with it (skipped while Redis is down);
3. record crossed alert thresholds; the caller sends each new alert.
"""

import logging
import time
from dataclasses import dataclass, field

from infra.state import StateUnavailable

from .alerts import alerts_create
from .budget_state import Reconciled, reconcile_counters
from .budgets import spend_ledger_refresh
from .models import BudgetAlert

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    ledger_entries: int = 0
    reconciled: Reconciled | None = None  # None: Redis was unavailable
    alerts: list[BudgetAlert] = field(default_factory=list)  # new, with something to send


def budget_check(now: float | None = None) -> CheckReport:
    now = time.time() if now is None else now
    entries = spend_ledger_refresh(now)
    report = CheckReport(ledger_entries=len(entries))
    try:
        report.reconciled = reconcile_counters(entries, now)
    except StateUnavailable as exc:
        # Admission rebuilds missing counters itself; raising lagging ones waits for Redis.
        log.warning("budget counters not reconciled: state store unavailable (%s)", exc)
    if report.reconciled is not None and (report.reconciled.raised or report.reconciled.created):
        log.info(
            "budget counters reconciled",
            extra={
                "counters_raised": report.reconciled.raised,
                "counters_created": report.reconciled.created,
            },
        )
    report.alerts = alerts_create(entries)
    return report
