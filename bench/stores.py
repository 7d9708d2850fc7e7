"""The benchmark's Postgres database and Redis DB: created fresh, read back, dropped."""

import os
import time

import psycopg
import redis
from procs import BenchError

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "gateway_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
USAGE_STREAM = "gw:usage"  # GATEWAY_USAGE_STREAM's default; the benchmark does not change it


def reset_stores() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"cannot flush Redis at {REDIS_URL}: {exc}") from exc
    # Last, so that a failure above leaves no database behind.
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    except psycopg.Error as exc:
        raise BenchError(f"cannot create {DB_NAME} through {PG_ADMIN_URL}: {exc}") from exc


def drop_database() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def database_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME


def self_reported(window: list[float]) -> dict | None:
    """The gateway's own overhead figure (usage log) for requests inside a wrk window."""
    sql = (
        "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms - upstream_ms),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms - upstream_ms)"
        " FROM billing_usagerecord WHERE created_at >= to_timestamp(%s)"
        " AND created_at < to_timestamp(%s) AND status_code = 200"
    )
    with psycopg.connect(database_url()) as conn:
        rows, p50, p99 = conn.execute(sql, window).fetchone()
    return {"rows": rows, "p50_ms": p50, "p99_ms": p99} if rows else None


def wait_for_ingestion(gateway_requests: int, timeout_s: float = 60) -> dict:
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + timeout_s
    while client.xlen(USAGE_STREAM) and time.monotonic() < deadline:
        time.sleep(0.5)
    with psycopg.connect(database_url()) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM billing_usagerecord").fetchone()
    return {
        "rows": rows,
        "gateway_requests": gateway_requests,
        "backlog": client.xlen(USAGE_STREAM),
    }
