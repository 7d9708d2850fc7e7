"""Every server process runs the system checks before it serves (gateway/startup.py, called by
gateway/asgi.py at import): real uvicorn processes refuse a bad configuration, naming the
variable, and start with a good one."""

import subprocess

import httpx
from cryptography.fernet import Fernet

from .helpers_proc import PYTHON, ROOT, base_env, free_port, start, stop, wait_for

STRONG_SECRET = "k" + Fernet.generate_key().decode()
UVICORN_STARTUP_FAILURE = 3


def _embedded(tmp_path, **overrides) -> dict[str, str]:
    embedded = {
        "DATABASE_URL": None,
        "REDIS_URL": None,
        "CELERY_BROKER_URL": None,
        "CELERY_TASK_ALWAYS_EAGER": None,
        "WEB_CONCURRENCY": "1",
        "SQLITE_PATH": str(tmp_path / "gw.sqlite3"),
    }
    return base_env(**{**embedded, **overrides})


def _production(**overrides) -> dict[str, str]:
    # The test run's Postgres and Redis; nothing below needs more than their URLs.
    return base_env(**{"SECRET_KEY": STRONG_SECRET, "WEB_CONCURRENCY": "1", **overrides})


def _uvicorn(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run plain uvicorn (no --workers: it reads WEB_CONCURRENCY, as `make serve` arranges) and
    wait for it to give up; the deadline only bounds a server that wrongly keeps running."""
    args = [PYTHON, "-m", "uvicorn", "gateway.asgi:application", "--port", str(free_port())]
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )


def test_bad_key_and_two_workers_without_redis_stop_the_server(tmp_path):
    # The combination uvicorn used to serve happily: an invalid encryption key, two workers,
    # and no Redis to share their state.
    env = _embedded(tmp_path, GATEWAY_ENCRYPTION_KEYS="notakey", WEB_CONCURRENCY="2")
    result = _uvicorn(env)
    output = result.stdout + result.stderr
    assert "the gateway refuses to start" in output
    assert "GATEWAY_ENCRYPTION_KEYS entry 0 is not a valid Fernet key" in output
    assert "WEB_CONCURRENCY > 1 without REDIS_URL" in output
    # Each worker exits with uvicorn's start-up failure status, so the supervisor stops instead
    # of restarting them forever. (Its own status is then 0, uvicorn's choice for several
    # workers: `make serve` runs the same checks first, for a non-zero status; see below.)
    assert "failed to start, stopping the parent process" in output
    assert "Application startup complete" not in output


def test_one_worker_refuses_to_start_with_a_non_zero_status(tmp_path):
    result = _uvicorn(_embedded(tmp_path, GATEWAY_ENCRYPTION_KEYS="notakey"))
    assert result.returncode == UVICORN_STARTUP_FAILURE
    assert "(gateway.E002) GATEWAY_ENCRYPTION_KEYS entry 0" in result.stderr
    assert "notakey" not in result.stderr  # a key is a secret, even a broken one


def test_unparseable_setting_stops_workers_instead_of_restarting_them(tmp_path):
    env = _embedded(tmp_path, GATEWAY_MAX_BODY_BYTES="lots", WEB_CONCURRENCY="2")
    result = _uvicorn(env)
    output = result.stdout + result.stderr
    assert "GATEWAY_MAX_BODY_BYTES has an invalid value" in output
    assert "failed to start, stopping the parent process" in output


def test_insecure_production_setting_refuses_to_start_naming_it():
    result = _uvicorn(_production(SESSION_COOKIE_SECURE="false"))
    assert result.returncode == UVICORN_STARTUP_FAILURE
    assert "(gateway.E010) SESSION_COOKIE_SECURE is off in production" in result.stderr
    assert "hint:" in result.stderr


def test_preflight_exits_non_zero_before_a_multi_worker_server_starts(tmp_path):
    # What `make serve` runs before uvicorn.
    env = _embedded(tmp_path, GATEWAY_ENCRYPTION_KEYS="notakey", WEB_CONCURRENCY="2")
    result = subprocess.run(
        [PYTHON, "-m", "gateway.startup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "GATEWAY_ENCRYPTION_KEYS" in result.stderr
    assert "WEB_CONCURRENCY" in result.stderr


def test_make_serve_runs_the_checks_before_uvicorn():
    # A dry run: prints the commands, runs none of them.
    result = subprocess.run(
        ["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    preflight = next(i for i, line in enumerate(lines) if "-m gateway.startup" in line)
    server = next(i for i, line in enumerate(lines) if "-m uvicorn" in line)
    assert preflight < server


def test_good_production_config_starts_two_workers_and_logs_its_warnings(tmp_path):
    workers = 2
    port = free_port()
    log = tmp_path / "server.log"
    env = _production(WEB_CONCURRENCY=str(workers))
    server = start(
        [PYTHON, "-m", "uvicorn", "gateway.asgi:application", "--port", str(port)],
        env=env,
        log_path=log,
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60, what="the server to answer /healthz")
    finally:
        stop(server)
    output = log.read_text()
    assert "refuses to start" not in output
    # Warnings do not stop it; they are logged, once per worker (Django's own deployment check:
    # the gateway leaves the http -> https redirect to the proxy by default).
    assert output.count("system check: (security.W008)") == workers
