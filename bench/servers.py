"""The gateway's web server for the bench: `make serve` (uvicorn) by default, or granian.

BENCH_SERVER=uvicorn|granian picks one; BENCH_SERVE_ARGS adds options (for uvicorn through
`make serve SERVE_ARGS=...`, so the production recipe is what runs). Granian is installed into
.venv only when asked for, and run with the same worker count, host and port, no access log,
and the ASGI lifespan on (the gateway starts its background tasks there).
"""

import os
import shlex
import subprocess
from pathlib import Path

import procs
from procs import BenchError, Service

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
GRANIAN_VERSION = "2.8.7"  # pinned for comparable runs; installed on first BENCH_SERVER=granian


def ensure_granian() -> str:
    exe = ROOT / ".venv" / "bin" / "granian"
    if not exe.exists():
        print(f"granian is missing; installing granian=={GRANIAN_VERSION} into .venv", flush=True)
        argv = [PY, "-m", "pip", "install", "--quiet", f"granian[uvloop]=={GRANIAN_VERSION}"]
        if subprocess.run(argv, check=False).returncode != 0 or not exe.exists():
            raise BenchError(f"could not install granian {GRANIAN_VERSION} into .venv")
    return str(exe)


def start(env: dict, workers: int, logs: Path, state_dir: Path, services: list):
    """Start the web server; returns its Service and the settings to record."""
    kind = os.environ.get("BENCH_SERVER", "uvicorn")
    extra = shlex.split(os.environ.get("BENCH_SERVE_ARGS", ""))
    port = procs.free_port()
    serve_env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    if kind == "uvicorn":
        argv = ["make", "--no-print-directory", "serve", f"SERVE_ARGS={shlex.join(extra)}"]
        command = "make serve (uvicorn --workers WEB_CONCURRENCY --loop uvloop --http httptools "
        command += f"--no-access-log{' ' + shlex.join(extra) if extra else ''})"
    elif kind == "granian":
        exe = ensure_granian()
        # What `make serve` does around uvicorn: an empty metrics directory shared by the
        # workers, and the start-up checks once before the workers (gateway/startup.py).
        metrics_dir = state_dir / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        check = subprocess.run([PY, "-m", "gateway.startup"], cwd=ROOT, env=serve_env,
                               capture_output=True, text=True, check=False)  # fmt: skip
        if check.returncode != 0:
            raise BenchError(f"gateway start-up checks failed:\n{check.stdout}{check.stderr}")
        # All interfaces, as `make serve` binds.
        argv = [exe, "--interface", "asgi", "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104
        argv += ["--workers", str(workers), "--loop", "uvloop", "--no-access-log", *extra]
        argv += ["gateway.asgi:application"]  # --interface asgi runs the lifespan
        command = shlex.join(["granian", *argv[1:]]).replace(str(port), "PORT")
    else:
        raise BenchError(f"BENCH_SERVER must be uvicorn or granian, not {kind!r}")
    web = Service("serve", argv, serve_env, ROOT, logs)
    services.append(web.start())
    return web, {"kind": kind, "port": port, "command": command, "extra_args": extra}
