"""Runtime logs: JSON lines in production, readable lines under `make run`."""

import logging
import subprocess
import sys
from decimal import Decimal

import httpx
import orjson
import pytest

from gateway.logformat import ConsoleFormatter, JsonFormatter

from .helpers_proc import PYTHON, ROOT, base_env, free_port, start, stop, wait_for

FIELDS = {"event": "request_refused", "request_id": "abc123", "status": 401, "client": "10.0.0.7"}


def _record(msg: str = "refused %s", *args, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.getLogger("gateway.refusals").makeRecord(
        "gateway.refusals", logging.WARNING, __file__, 1, msg, args or ("POST",), exc_info
    )
    record.__dict__.update(extra)
    return record


def test_json_line_has_the_core_fields_and_the_extras():
    line = JsonFormatter().format(_record(**FIELDS))

    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["message"] == "refused POST"
    assert (entry["level"], entry["logger"]) == ("WARNING", "gateway.refusals")
    assert entry["timestamp"].endswith("+00:00")
    assert {k: entry[k] for k in FIELDS} == FIELDS


def test_json_line_carries_the_traceback_and_odd_values():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(exc_info=sys.exc_info(), cost=Decimal("0.25"), big=2**70, level="x")

    entry = orjson.loads(JsonFormatter().format(record))

    assert "ValueError: boom" in entry["exception"]
    assert entry["cost"] == "0.25"
    assert entry["big"] == 2**70
    assert entry["level"] == "WARNING"  # an extra cannot hide a core field


def test_console_line_is_readable_with_the_extras_after_the_message():
    line = ConsoleFormatter().format(_record(**FIELDS))

    assert " WARNING gateway.refusals refused POST event=request_refused request_id=abc123" in line
    assert line.endswith("client=10.0.0.7")


def _settings_value(name: str, **env) -> str:
    script = (
        f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    )
    result = subprocess.run(
        [PYTHON, "-c", script],
        cwd=ROOT,
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": None, "REDIS_URL": None}, "console"),  # the embedded default
        ({}, "json"),  # DATABASE_URL and REDIS_URL, as the test run has them
        ({"DATABASE_URL": None}, "json"),
        ({"LOG_FORMAT": "console"}, "console"),
        ({"DATABASE_URL": None, "REDIS_URL": None, "LOG_FORMAT": "json"}, "json"),
    ],
    ids=["embedded", "production", "redis only", "forced console", "forced json"],
)
def test_log_format_follows_the_mode_unless_set(tmp_path, env, expected):
    env.setdefault("SQLITE_PATH", str(tmp_path / "gw.sqlite3"))
    env.setdefault("LOG_FORMAT", None)
    assert _settings_value("LOG_FORMAT", **env) == expected


def test_production_server_logs_only_json_lines(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    # Production mode: the test run's DATABASE_URL and REDIS_URL, no LOG_FORMAT.
    server = start(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "gateway.asgi:application",
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",
        ],
        env=base_env(LOG_FORMAT=None),
        log_path=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def refused():
            assert server.poll() is None, log.read_text()
            try:
                return httpx.post(f"{url}/v1/chat/completions", json={}, timeout=2)
            except httpx.TransportError:
                return None

        response = wait_for(refused, timeout=60, what="the server to answer")
        assert response.status_code == 401
        wait_for(lambda: "request_refused" in log.read_text(), timeout=10, what="the log line")
    finally:
        stop(server)

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [orjson.loads(line) for line in lines]  # every line, uvicorn's own included
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # uvicorn's start-up lines
    # --no-access-log still holds: the logging configuration does not turn it back on.
    assert not any(e["logger"] == "uvicorn.access" for e in entries)
    [refusal] = [e for e in entries if e.get("event") == "request_refused"]
    assert refusal["request_id"] == response.headers["x-request-id"]
    assert (refusal["status"], refusal["reason"]) == (401, "invalid_api_key")
    assert refusal["client"] == "127.0.0.1"
    assert (refusal["level"], refusal["logger"]) == ("INFO", "gateway.refusals")
