"""Helpers for tests that run the gateway's own programs (manage.py, uvicorn, celery) as
subprocesses, against the same services as the test run."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Test-only values, the same ones `make test` passes; never used outside tests.
TEST_SECRET_KEY = "test-only-secret-key"
TEST_FERNET_KEY = "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE="


def base_env(**overrides: str | None) -> dict[str, str]:
    """The current environment with overrides; None removes a variable.

    Every variable a test depends on is set explicitly: gateway/settings.py also reads ./.env
    (without overwriting), so anything left unset may be filled in from that file.
    """
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        SECRET_KEY=TEST_SECRET_KEY,
        GATEWAY_ENCRYPTION_KEYS=TEST_FERNET_KEY,
        PYTHONUNBUFFERED="1",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def subprocess_database_url() -> str:
    """DATABASE_URL of the database this test run uses (pytest-django creates test_<name>), so
    a subprocess sees the rows the test committed."""
    from django.db import connection

    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a long-running program in its own process group, output to a file (a pipe that
    nobody reads would fill up and block it)."""
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started by `start` (and only its own group), politely, then firmly."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll until condition() is truthy; a deadline, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
