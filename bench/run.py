"""`make bench`: the gateway's added latency, measured against a direct call in the same run.

Everything is started here and stopped here: a fake OpenAI-compatible upstream, a fresh
Postgres database, Redis DB 14, the gateway exactly as `make serve` runs it, and a Celery worker
and beat so usage ingestion competes for the CPU as it does in production. wrk then sends the
same request direct to the upstream and through the gateway; the difference is what the gateway
adds. Results go to bench/results/ and to a marked section of docs/performance.md.

It is a measurement, not a test: it fails only when the setup fails, never on the numbers.
Options: --duration S, --warmup S, --no-docs (leave docs/performance.md alone),
--profile (also record the gateway with py-spy during an extra c=1 run). Environment:
BENCH_WEB_CONCURRENCY (default: one web process per CPU), BENCH_PG_URL (an admin connection
used to create and drop the database), BENCH_REDIS_URL (the Redis database to flush and use).
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import procs
import report
import stores
from cryptography.fernet import Fernet
from procs import BenchError, Service

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = str(ROOT / ".venv" / "bin" / "python")
RESULTS = BENCH / "results"
LUA = BENCH / "chat.lua"

NPROC = len(os.sched_getaffinity(0))
# Production's rule of thumb, one web process per core; override to compare.
WEB_CONCURRENCY = int(os.environ.get("BENCH_WEB_CONCURRENCY", NPROC))
USAGE_INGEST_INTERVAL_S = "1.0"  # the production default, spelled out for the report
UPSTREAM_KEY = "bench-upstream-key"  # must match bench/config.yaml
# One small chat completion; chat.lua sends exactly these bytes, direct and through the gateway.
BODY = (
    b'{"model":"bench-small","max_tokens":16,'
    b'"messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
)


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


def ensure_py_spy() -> str:
    exe = ROOT / ".venv" / "bin" / "py-spy"
    if not exe.exists():
        print("py-spy is missing; installing it into .venv for --profile", flush=True)
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(exe)


def base_env() -> dict[str, str]:
    """Every variable the gateway reads is set here, so ./.env cannot fill anything in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        GATEWAY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DATABASE_URL=stores.database_url(),
        REDIS_URL=stores.REDIS_URL,
        USAGE_INGEST_INTERVAL_S=USAGE_INGEST_INTERVAL_S,
        DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict, *args: str) -> str:
    out = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout.strip()


def run_wrk(wrk: str, url: str, key: str, threads: int, conns: int, secs: float, delay=0):
    env = {**os.environ, "BENCH_API_KEY": key, "BENCH_BODY": BODY.decode()}
    env["BENCH_DELAY_MS"] = str(delay)
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{secs:g}s", "--timeout", "5s"]
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
    data["error_count"] = sum(data["errors"].values())
    data["window"] = [started, finished]
    return data


def start_services(env: dict, logs: Path, state_dir: Path, services: list[Service]) -> dict:
    """Start everything, appending to `services` as it goes so a failure still stops them."""
    upstream_port, gateway_port = procs.free_port(), procs.free_port()
    upstream = Service(
        "fake_upstream",
        [PY, "-m", "tests.fake_upstream", "--port", str(upstream_port)],
        env,
        ROOT,
        logs,
    )
    services.append(upstream.start())
    upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
    procs.wait_until(
        "the fake upstream", lambda: probe_chat(upstream_url, UPSTREAM_KEY), [upstream], 30
    )

    print("migrating a fresh database and loading bench/config.yaml", flush=True)
    manage(env, "migrate", "--no-input", "-v0")
    print(manage({**env, "BENCH_UPSTREAM_URL": upstream_url}, "loadconfig", "bench/config.yaml"))
    key = manage(
        env,
        "createapikey",
        *("--team", "bench", "--name", "bench"),
        *("--rpm", "100000000", "--tpm", "1000000000", "--budget-usd", "100000"),
    )

    serve_env = {**env, "PORT": str(gateway_port), "WEB_CONCURRENCY": str(WEB_CONCURRENCY)}
    web = Service("serve", ["make", "--no-print-directory", "serve"], serve_env, ROOT, logs)
    worker = Service("worker", ["make", "--no-print-directory", "worker"], env, ROOT, logs)
    # The command of `make beat`, with the schedule file in this run's temporary directory.
    beat_argv = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "gateway", "beat"]
    beat_argv += ["--loglevel", "INFO", "--schedule", str(state_dir / "celerybeat-schedule")]
    beat = Service("beat", beat_argv, env, ROOT, logs)
    for service in (web, worker, beat):
        services.append(service.start())

    gateway_url = f"http://127.0.0.1:{gateway_port}"
    procs.wait_until(
        "the gateway's /readyz", lambda: procs.http(gateway_url + "/readyz")[0] == 200, services
    )
    procs.wait_until(
        "the Celery worker",
        lambda: b"ready." in worker.log_path.read_bytes(),
        services,
    )
    status, _, body = procs.http(gateway_url + "/v1/chat/completions", body=BODY, headers=auth(key))
    if status != 200:
        raise BenchError(f"the gateway answered {status} to the benchmark request: {body[:500]!r}")
    urls = {
        "direct": upstream_url + "/chat/completions",
        "gateway": gateway_url + "/v1/chat/completions",
    }
    return {"urls": urls, "keys": {"direct": UPSTREAM_KEY, "gateway": key}, "web": web}


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def probe_chat(base_url: str, key: str) -> bool:
    return procs.http(base_url + "/chat/completions", body=BODY, headers=auth(key))[0] == 200


def measure(wrk: str, ctx: dict, args) -> list[dict]:
    print(f"warming up ({args.warmup:g} s per target)", flush=True)
    for target in ("direct", "gateway"):
        run_wrk(wrk, ctx["urls"][target], ctx["keys"][target], 2, 16, args.warmup)

    plan = [
        {"name": "c=1", "threads": 1, "connections": 1},
        {"name": "c=16 (saturated)", "threads": 2, "connections": 16},
    ]
    scenarios = [run_scenario(wrk, ctx, scenario, args.duration) for scenario in plan]

    # Half capacity: 16 connections, each pausing so the offered rate is half the saturated
    # gateway throughput measured just above. wrk's pacing is per connection, in whole ms.
    target_rps = scenarios[1]["gateway"]["rps"] / 2
    own_ms = scenarios[0]["gateway"]["p50_us"] / 1000
    delay_ms = max(1, round(16 / target_rps * 1000 - own_ms))
    half = {"name": "c=16 at half capacity", "threads": 2, "connections": 16}
    half["pacing"] = {"delay_ms": delay_ms, "target_rps": target_rps}
    scenarios.append(run_scenario(wrk, ctx, half, args.duration, delay_ms))
    return scenarios


def run_scenario(wrk, ctx: dict, scenario: dict, secs: float, delay_ms: int = 0) -> dict:
    result = {**scenario, "web_concurrency": WEB_CONCURRENCY}
    web_group = ctx["web"].pid
    for target in ("direct", "gateway"):
        print(f"  {scenario['name']:<22} {target:<8}", end="", flush=True)
        cpu_before = procs.group_cpu_s(web_group)
        r = run_wrk(
            wrk, ctx["urls"][target], ctx["keys"][target], scenario["threads"],
            scenario["connections"], secs, delay_ms,
        )  # fmt: skip
        if target == "gateway":
            # Unlike latency, CPU per request contains no queueing: it compares saturated and
            # paced runs, and shows where a latency change came from.
            cpu = procs.group_cpu_s(web_group) - cpu_before
            r["web_cpu_ms_per_request"] = cpu * 1000 / max(r["requests"], 1)
        result[target] = r
        print(f" {r['rps']:8.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
              f"p99 {r['p99_us'] / 1000:6.2f} ms  errors {r['error_count']}")  # fmt: skip
    d, g = result["direct"], result["gateway"]
    result["added"] = {
        "p50_ms": (g["p50_us"] - d["p50_us"]) / 1000,
        "p99_ms": (g["p99_us"] - d["p99_us"]) / 1000,
    }
    return result


def profile(wrk: str, ctx: dict, secs: float, out_dir: Path) -> str:
    """py-spy over every web process during one more c=1 run; kept out of the measured runs."""
    spy = ensure_py_spy()
    pid = procs.python_descendant(ctx["web"].pid)
    if pid is None:
        raise BenchError("could not find the uvicorn process under `make serve`")
    raw = out_dir / "profile-c1.txt"
    argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    argv += ["--rate", "500", "--duration", str(int(secs) + 1), "--output", str(raw)]
    spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # py-spy attaches before the load starts
    run_wrk(wrk, ctx["urls"]["gateway"], ctx["keys"]["gateway"], 1, 1, secs)
    _, err = spy_proc.communicate(timeout=60)
    if spy_proc.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy failed: {err.decode(errors='replace')}")
    summary = report.profile_summary(raw)
    (out_dir / "profile-c1-summary.txt").write_text(summary + "\n")
    return summary


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up per target")
    parser.add_argument("--no-docs", action="store_true", help="do not touch performance.md")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway at c=1")
    args = parser.parse_args()

    if not (ROOT / "tests" / "fake_upstream.py").exists():
        raise BenchError("tests/fake_upstream.py is missing: it is the benchmark's upstream")
    wrk = ensure_wrk()
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)
    started_at = datetime.now(UTC)
    # Other programs competing for the cores move latency a lot; the report says how busy it was.
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"note: 1-minute load average is {load_before:.2f} before starting; other "
              "programs are using the CPU and the numbers will be noisier", flush=True)  # fmt: skip
    services: list[Service] = []
    # SIGTERM (CI, a supervisor) gets the same clean shutdown as Ctrl-C; SIGINT is set too
    # because a shell that starts us in the background hands us SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as state_dir:
        stores.reset_stores()
        try:
            env = base_env()
            ctx = start_services(env, logs, Path(state_dir), services)
            # CPU that other programs take meanwhile is reported: it moves latency a lot.
            own_groups = {os.getpgid(0), *(service.pid for service in services)}
            foreign_before, measure_start = procs.foreign_cpu_s(own_groups), time.monotonic()
            scenarios = measure(wrk, ctx, args)
            foreign = procs.foreign_cpu_s(own_groups) - foreign_before
            foreign_share = foreign / (time.monotonic() - measure_start)
            gateway_requests = sum(s["gateway"]["requests"] for s in scenarios)
            ingestion = stores.wait_for_ingestion(gateway_requests)
            for s in scenarios:
                s["self_reported"] = stores.self_reported(s["gateway"]["window"])
            summary = profile(wrk, ctx, args.duration, RESULTS) if args.profile else None
        except BenchError as exc:
            print(f"\nbench failed: {exc}\n(logs in {logs})", file=sys.stderr)
            return 1
        finally:
            for service in reversed(services):
                service.stop()
            try:
                stores.drop_database()
            except Exception as exc:  # never mask the original error with a cleanup one
                print(f"could not drop {stores.DB_NAME}: {exc}", file=sys.stderr)

    result = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            **report.machine_facts(ROOT),
            "load_average_before": load_before,
            "other_programs_cpu_share": foreign_share,
        },
        "settings": {
            "web_concurrency": WEB_CONCURRENCY,
            "serve": "make serve (uvicorn --workers WEB_CONCURRENCY --loop uvloop --http "
            "httptools --no-access-log)",
            "celery_worker": f"make worker, prefork concurrency {NPROC}",
            "usage_ingest_interval_s": USAGE_INGEST_INTERVAL_S,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "body_bytes": len(BODY),
            "wrk_timeout_s": 5,
        },
        "scenarios": scenarios,
        "ingestion": ingestion,
    }
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"bench-{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    body = report.markdown(result)
    print("\n" + body + "\n")
    if summary:
        print(summary + "\n")
    if not args.no_docs:
        report.update_doc(ROOT / "docs" / "performance.md", body)
        print("updated docs/performance.md")
    print(f"results: {RESULTS / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
