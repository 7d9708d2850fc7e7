"""Daily rollup and retention speed: one UTC day of N usage rows summed into DailyUsage, then
deleted in retention batches. A measurement, not a test.

Run against a migrated database of your own (it adds rows to one day of the year 2001 and removes
them afterwards; it refuses to run if that day already has usage rows):
  DATABASE_URL=postgres://... SECRET_KEY=x GATEWAY_ENCRYPTION_KEYS=... \
      .venv/bin/python bench/rollup_bench.py [--rows 200000]
"""

import argparse
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from billing.models import DailyUsage, UsageRecord  # noqa: E402
from billing.retention import delete_in_batches  # noqa: E402
from billing.rollups import rollup_days  # noqa: E402

DAY = date(2001, 1, 1)


def _insert(count: int) -> None:
    rng = random.Random(1)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    batch = []
    for i in range(count):
        team = rng.randint(1, 20)
        failed = rng.random() < 0.05
        batch.append(
            UsageRecord(
                request_id=f"bench-rollup-{i}",
                created_at=start + timedelta(seconds=rng.uniform(0, 86_399)),
                organization_id=1,
                team_id=team,
                team_slug=f"team-{team}",
                project_id=team * 10 + rng.randint(0, 2),
                api_key_id=team * 100 + rng.randint(0, 4),
                endpoint="chat.completions",
                requested_model=rng.choice(["small", "large", "embed"]),
                provider_name=rng.choice(["openai", "anthropic"]),
                tags={"use_case": rng.choice(["search", "chat", "summary"])},
                status_code=429 if failed else 200,
                error_type="rate_limit_exceeded" if failed else "",
                input_tokens=rng.randint(10, 4000),
                output_tokens=rng.randint(10, 1000),
                latency_ms=rng.lognormvariate(6, 1),
                cost_usd=Decimal(rng.randint(1, 10**9)) / Decimal(10**12),
            )
        )
        if len(batch) == 5000:
            UsageRecord.objects.bulk_create(batch)
            batch = []
    UsageRecord.objects.bulk_create(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    day_rows = UsageRecord.objects.filter(created_at__date=DAY)
    if day_rows.exists():
        sys.exit(f"{DAY} already has usage rows: not touching this database")
    print(f"database: {connection.vendor}, rows: {args.rows}")
    try:
        began = time.perf_counter()
        _insert(args.rows)
        print(f"insert: {time.perf_counter() - began:.1f} s")
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum would have
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE billing_usagerecord")

        began = time.perf_counter()
        written = rollup_days([DAY])
        first = time.perf_counter() - began
        began = time.perf_counter()
        rewritten = rollup_days([DAY])
        replay = time.perf_counter() - began
        print(f"rollup: {written} rows in {first:.2f} s = {args.rows / first:,.0f} usage rows/s")
        print(f"replay: {rewritten} rows written, {replay:.2f} s")

        began = time.perf_counter()
        deleted = delete_in_batches(
            UsageRecord.objects.filter(created_at__lt=datetime(2001, 1, 2, tzinfo=UTC)),
            "created_at",
            5000,
        )
        purge = time.perf_counter() - began
        print(
            f"purge (batches of 5000): {deleted} rows in {purge:.2f} s = {deleted / purge:,.0f}/s"
        )
    finally:
        UsageRecord.objects.filter(request_id__startswith="bench-rollup-").delete()
        DailyUsage.objects.filter(day=DAY).delete()


if __name__ == "__main__":
    main()
