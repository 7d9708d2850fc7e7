"""LiteLLM Proxy, the comparison: installed into its own virtualenv, configured and started here.

It runs against the same fake upstream as the gateway, with a master key and no database (so
no spend tracking, no virtual keys: the lightest configuration it has), no Redis, and the same
number of worker processes as the gateway's web processes. What its production guide lists as
costly and not needed here is turned off; every option is recorded in the results JSON.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import procs
from procs import BenchError, Service

# The comparison's version, pinned so runs compare like with like. 1.108.4: the newest release
# whose `[proxy]` extra resolves from PyPI on Python 3.11 at the time of pinning (1.108.5 and
# later pin litellm-enterprise / litellm-proxy-extras builds that were not published; 1.107.0
# was withdrawn). Changing it reinstalls the virtualenv on the next run.
LITELLM_VERSION = "1.108.4"
VENV = Path(__file__).resolve().parent / ".litellm-venv"  # git-ignored

# litellm_settings / general_settings of the generated config, as recorded in the JSON.
LITELLM_SETTINGS = {
    "set_verbose": False,  # no per-request debug printing
    "json_logs": False,
    "request_timeout": 600,
    "telemetry": False,
}
GENERAL_SETTINGS = {
    "disable_spend_logs": True,  # no database to write them to anyway
    "disable_error_logs": True,  # "turn off writing LLM Exceptions to DB"
}
# Environment of the proxy: a clean one (no DATABASE_URL, no REDIS_URL, nothing of the
# gateway's), plus these.
ENV = {
    "LITELLM_LOG": "ERROR",  # the production guide's log level: no INFO line per request
    "LITELLM_MODE": "PRODUCTION",  # do not read a .env file
    # The model cost map is otherwise fetched from the internet at start-up.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Its upstream pool, raised as the gateway's is for the open-streams scenario (defaults
    # 1,000 per process and 500 per host: one worker given most of the 1,000 streams would
    # hold the rest waiting for a connection).
    "AIOHTTP_CONNECTOR_LIMIT": "1000",
    "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "1000",
    "PYTHONUNBUFFERED": "1",  # its log reaches bench/results/logs/litellm.log as it is written
}
# uvicorn's supervisor restarts a worker that does not answer its health check within 5 s; a
# LiteLLM worker (spawned, so it imports everything itself) can take longer than that to start
# on a busy 2-core machine, and is then killed and restarted forever. The proxy's own option:
HEALTHCHECK_TIMEOUT_S = 120
_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def installed_version() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_installed() -> str:
    """The proxy's executable; (re)creates the virtualenv unless the pinned version is there."""
    exe = VENV / "bin" / "litellm"
    if installed_version() == LITELLM_VERSION and exe.exists():
        return str(exe)
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {VENV} (once)", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(VENV / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip"],
        [str(VENV / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"],
    ]
    for argv in steps:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BenchError(
                f"could not install LiteLLM Proxy {LITELLM_VERSION} ({' '.join(argv[-3:])}):\n"
                f"{out.stdout[-2000:]}{out.stderr[-3000:]}\n"
                "Fix the install, or run with --no-litellm to skip the comparison."
            )
    if installed_version() != LITELLM_VERSION or not exe.exists():
        raise BenchError(f"litellm {LITELLM_VERSION} is not importable from {VENV} after install")
    return str(exe)


def write_config(path: Path, models: dict[str, str], upstream_key: str, master_key: str) -> dict:
    """models: public name -> the upstream's /v1 base URL. JSON is valid YAML."""
    config = {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name}",
                    "api_base": base_url,
                    "api_key": upstream_key,
                },
            }
            for name, base_url in models.items()
        ],
        "litellm_settings": LITELLM_SETTINGS,
        "general_settings": {**GENERAL_SETTINGS, "master_key": master_key},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    return config


def start(workers: int, models: dict[str, str], upstream_key: str, probe_body: bytes,
          state_dir: Path, logs: Path, services: list[Service]) -> dict:  # fmt: skip
    exe = ensure_installed()
    master_key = "sk-bench-" + secrets.token_hex(16)
    config_path = state_dir / "litellm-config.yaml"
    write_config(config_path, models, upstream_key, master_key)
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
    env.update(ENV)
    argv = [exe, "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", str(workers)]
    argv += ["--timeout_worker_healthcheck", str(HEALTHCHECK_TIMEOUT_S)]
    service = Service("litellm", argv, env, state_dir, logs)
    services.append(service.start())
    base = f"http://127.0.0.1:{port}"
    procs.wait_until(
        "LiteLLM's /health/liveliness",
        lambda: procs.http(base + "/health/liveliness")[0] == 200,
        [service],
        180,  # its first start compiles nothing, but imports a great deal
    )
    # /health/liveliness answers once the first worker is up; the others must be up too
    # before any measurement, or its first seconds run on fewer processes than asked for.
    procs.wait_until(
        f"all {workers} LiteLLM workers",
        lambda: service.log_path.read_bytes().count(b"Proxy initialized with Config") >= workers,
        [service],
        180,
    )
    headers = {"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"}
    for _ in range(workers * 4):
        status, _, body = procs.http(base + "/v1/chat/completions", body=probe_body,
                                     headers=headers, timeout=30)  # fmt: skip
        if status != 200:
            raise BenchError(f"LiteLLM answered {status} to the benchmark request: {body[:500]!r}")
    return {
        "url": base + "/v1/chat/completions",
        "key": master_key,
        "service": service,
        "settings": {
            "version": LITELLM_VERSION,
            "command": "litellm --config CONFIG --host 127.0.0.1 --port PORT "
            f"--num_workers {workers} --timeout_worker_healthcheck {HEALTHCHECK_TIMEOUT_S}",
            "litellm_settings": LITELLM_SETTINGS,
            "general_settings": {**GENERAL_SETTINGS, "master_key": "(generated)"},
            "environment": ENV,
            "database": "none",
            "redis": "none",
        },
    }
