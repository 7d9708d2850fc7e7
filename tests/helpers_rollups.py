"""Rollup test helpers: varied usage rows, and what their daily rollups must be, computed here
from the detail rows independently of billing/rollups.py."""

import bisect
import itertools
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import LATENCY_BUCKETS_MS, DailyUsage, UsageRecord

_ids = itertools.count()
FAILURES = [(429, "rate_limit_exceeded"), (502, "upstream_error"), (400, "invalid_request")]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record(*, created_at: datetime, ingested_at: datetime | None = None, **fields) -> UsageRecord:
    """One stored usage row; `ingested_at` defaults to now, as ingestion sets it."""
    data = {
        "request_id": f"rollup-{next(_ids)}-{created_at.timestamp()}",
        "created_at": created_at,
        "endpoint": "chat.completions",
        "requested_model": "small",
        "provider_name": "mock",
        "status_code": 200,
        "latency_ms": 10.0,
        "cost_usd": Decimal("0.000001000000"),
    }
    data.update(fields)
    if ingested_at is not None:
        data["ingested_at"] = ingested_at
    return UsageRecord.objects.create(**data)


def random_rows(
    rng: random.Random, day: date, count: int, *, ingested_at=None
) -> list[UsageRecord]:
    """`count` rows spread over one UTC day, over two teams, keys, models, providers and use
    cases; some failures (one with no error type), latencies on and around bucket bounds."""
    rows = []
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for _ in range(count):
        team = rng.choice([1, 2])
        status, error_type = (200, "")
        if rng.random() < 0.3:
            status, error_type = rng.choice(FAILURES)
            if rng.random() < 0.2:
                error_type = ""  # a failure without a type: counted as http_<status>
        latency = rng.choice(
            [
                rng.uniform(0, 2000),
                float(rng.choice(LATENCY_BUCKETS_MS)),  # exactly on a bound: that bucket
                rng.uniform(300_000, 400_000),  # the open-ended bucket
            ]
        )
        use_case = rng.choice([None, "search", "chat"])
        rows.append(
            record(
                created_at=start + timedelta(seconds=rng.uniform(0, 86_399.999)),
                ingested_at=ingested_at,
                organization_id=10,
                team_id=team,
                team_slug=f"team{team}",
                project_id=rng.choice([None, 100 + team]),
                api_key_id=rng.choice([1000 + team, 2000 + team]),
                key_prefix=f"gw-{team}",
                requested_model=rng.choice(["small", "large"]),
                provider_name=rng.choice(["openai", "anthropic"]),
                tags={"use_case": use_case, "env": "prod"} if use_case else {"env": "prod"},
                status_code=status,
                error_type=error_type,
                input_tokens=rng.randint(0, 5000),
                output_tokens=rng.randint(0, 5000),
                latency_ms=latency,
                cost_usd=Decimal(rng.randint(0, 10**10)) / Decimal(10**12),
            )
        )
    return rows


def _percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (what percentile_cont defines)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_rollups() -> dict[tuple, dict]:
    """(day, team, project, key, model, provider, use case) -> the rollup's numbers, from every
    stored usage row."""
    groups: dict[tuple, list[UsageRecord]] = defaultdict(list)
    for row in UsageRecord.objects.all():
        key = (
            row.created_at.astimezone(UTC).date(),
            row.team_id,
            row.project_id,
            row.api_key_id,
            row.requested_model,
            row.provider_name,
            row.tags.get("use_case") or "",
        )
        groups[key].append(row)
    result = {}
    for key, rows in groups.items():
        latencies = [row.latency_ms for row in rows]
        hist = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        for value in latencies:
            hist[bisect.bisect_left(LATENCY_BUCKETS_MS, value)] += 1
        errors: dict[str, int] = defaultdict(int)
        for row in rows:
            if row.status_code >= 400:
                errors[row.error_type or f"http_{row.status_code}"] += 1
        result[key] = {
            "requests": len(rows),
            "errors": sum(1 for row in rows if row.status_code >= 400),
            "errors_by_type": dict(errors),
            "input_tokens": sum(row.input_tokens for row in rows),
            "output_tokens": sum(row.output_tokens for row in rows),
            "cost_usd": sum((row.cost_usd for row in rows), Decimal(0)),
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "p99": _percentile(latencies, 0.99),
            "latency_hist": hist,
        }
    return result


def stored_rollups() -> dict[tuple, dict]:
    result = {}
    for row in DailyUsage.objects.all():
        key = (
            row.day,
            row.team_id,
            row.project_id,
            row.api_key_id,
            row.model,
            row.provider_name,
            row.use_case,
        )
        assert key not in result, f"two rollup rows for {key}"
        result[key] = {
            "requests": row.requests,
            "errors": row.errors,
            "errors_by_type": row.errors_by_type,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cost_usd": row.cost_usd,
            "p50": row.latency_p50_ms,
            "p95": row.latency_p95_ms,
            "p99": row.latency_p99_ms,
            "latency_hist": row.latency_hist,
        }
    return result


def assert_rollups_match_detail() -> None:
    expected, stored = expected_rollups(), stored_rollups()
    assert stored.keys() == expected.keys()
    for key, numbers in expected.items():
        got = stored[key]
        for name in ("p50", "p95", "p99"):
            assert got.pop(name) == pytest.approx(numbers.pop(name), rel=1e-12, abs=1e-9), key
        assert got == numbers, key
