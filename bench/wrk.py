"""wrk: installed when missing, run with bench/chat.lua, its JSON line read back."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from procs import BenchError

LUA = Path(__file__).resolve().parent / "chat.lua"
TIMEOUT_S = 5  # wrk's --timeout: a request slower than this counts as a timeout error


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing; installing it with apt-get", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still not on PATH after apt-get install wrk")
    return found


def run(wrk: str, url: str, key: str, body: bytes, threads: int, conns: int, secs: float,
        mean_delay_ms: float = 0.0) -> dict:  # fmt: skip
    env = {**os.environ, "BENCH_API_KEY": key, "BENCH_BODY": body.decode()}
    env["BENCH_MEAN_DELAY_MS"] = f"{mean_delay_ms:.3f}"
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{secs:g}s", "--timeout", f"{TIMEOUT_S}s"]
    started = time.time()
    out = subprocess.run(
        [*argv, "-s", str(LUA), url], env=env, capture_output=True, text=True, check=False
    )
    finished = time.time()
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    # Errors by kind: every non-2xx status, and wrk's socket-level ones (connect, read, write,
    # timeout); wrk's own "status" count is the non-2xx total, already split by status here.
    errors = {s: n for s, n in data["statuses"].items() if not s.startswith("2")}
    errors.update({k: n for k, n in data["errors"].items() if k != "status" and n})
    data["errors_by_kind"] = errors
    data["error_count"] = sum(errors.values())
    data["window"] = [started, finished]
    return data
