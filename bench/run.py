"""`make bench`: the gateway's added latency, measured against a direct call and LiteLLM Proxy in
the same run.

Everything is started here and stopped here: a fast and a slow fake OpenAI-compatible upstream,
a fresh Postgres database, Redis DB 14, the gateway as `make serve` runs it, a Celery worker and
beat so usage ingestion competes for the CPU as it does in production, and LiteLLM Proxy (its
own virtualenv, bench/litellm.py). Each scenario (bench/scenarios.py) sends the same request
direct to the upstream, through the gateway and through LiteLLM; the differences are what each
proxy adds. Results go to bench/results/, docs/performance.json and a marked section of
docs/performance.md.

It is a measurement, not a test: it fails only when the setup fails, never on the numbers.
Options: --duration S, --warmup S, --only c1,c16,c64,paced,stream,memory, --no-litellm,
--no-docs (leave docs/ alone), --profile (py-spy the gateway during an extra c=1 run).
Environment: BENCH_WEB_CONCURRENCY (default: one web process per CPU), BENCH_SERVER
(uvicorn, the default, through `make serve`; or granian, installed into .venv when asked),
BENCH_SERVE_ARGS (extra server options, e.g. "--backlog 2048 --limit-concurrency 300"),
BENCH_NO_WORKER=1 (no Celery worker or beat during the measurements; ingestion is measured
after), BENCH_PG_URL (an admin connection used to create and drop the database),
BENCH_REDIS_URL (the Redis database to flush and use).
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import litellm
import procs
import report
import scenarios
import servers
import stores
import wrk
from cryptography.fernet import Fernet
from procs import BenchError, Service

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = str(ROOT / ".venv" / "bin" / "python")
RESULTS = BENCH / "results"

NPROC = len(os.sched_getaffinity(0))
# Production's rule of thumb, one web process per core; override to compare.
WEB_CONCURRENCY = int(os.environ.get("BENCH_WEB_CONCURRENCY", NPROC))
NO_WORKER = os.environ.get("BENCH_NO_WORKER", "") not in ("", "0")
USAGE_INGEST_INTERVAL_S = "1.0"  # the production default, spelled out for the report
# 1,000 open streams must fit in one process (workers do not share them out evenly): the
# in-flight limit and the upstream connection pool (default 200 per process, which would
# hold the rest waiting for a connection) are raised for the bench; no other scenario comes
# near either limit.
MAX_IN_FLIGHT = "1000"
UPSTREAM_KEY = "bench-upstream-key"  # must match bench/config.yaml
# One small chat completion; every target receives exactly these bytes.
BODY = (
    b'{"model":"bench-small","max_tokens":16,'
    b'"messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
)
STREAM_BODY = BODY[:-1] + b',"stream":true}'
SLOW_BODY = STREAM_BODY.replace(b"bench-small", b"bench-slow")
# The slow upstream: one event per word, a second apart, so a stream lasts 1.5 minutes,
# longer than opening 1,000 of them may take (scenarios.OPEN_TIMEOUT_S).
SLOW_CHUNK_DELAY_S = 1.0
SLOW_WORDS = 90
SLOW_REPLY = " ".join(["word"] * SLOW_WORDS)


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
        GATEWAY_MAX_IN_FLIGHT=MAX_IN_FLIGHT,
        GATEWAY_UPSTREAM_MAX_CONNECTIONS=MAX_IN_FLIGHT,
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


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def start_upstream(name: str, env: dict, logs: Path, services: list, *flags: str) -> str:
    port = procs.free_port()
    argv = [PY, "-m", "tests.fake_upstream", "--port", str(port), *flags]
    upstream = Service(name, argv, env, ROOT, logs)
    services.append(upstream.start())
    base = f"http://127.0.0.1:{port}/v1"
    procs.wait_until(f"the {name}", lambda: procs.http(base + "/models")[0] == 200, [upstream], 30)
    return base


def start_ingestion(env: dict, logs: Path, state_dir: Path, services: list) -> dict:
    """The Celery worker (`make worker`) and beat (the command of `make beat`, with the schedule
    file in this run's temporary directory); returns their process groups."""
    worker = Service("worker", ["make", "--no-print-directory", "worker"], env, ROOT, logs)
    beat_argv = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "gateway", "beat"]
    beat_argv += ["--loglevel", "INFO", "--schedule", str(state_dir / "celerybeat-schedule")]
    beat = Service("beat", beat_argv, env, ROOT, logs)
    services += [worker.start(), beat.start()]
    procs.wait_until(
        "the Celery worker", lambda: b"ready." in worker.log_path.read_bytes(), services
    )
    return {"worker": worker.pid, "beat": beat.pid}


def start_services(env: dict, logs: Path, state_dir: Path, services: list, args) -> dict:
    """Start everything, appending to `services` as it goes so a failure still stops them."""
    upstream_url = start_upstream("fake_upstream", env, logs, services)
    slow_url = start_upstream(
        "slow_upstream", env, logs, services,
        "--chunk-delay-s", str(SLOW_CHUNK_DELAY_S), "--reply", SLOW_REPLY,
    )  # fmt: skip
    upstream_pgid = services[0].pid

    print("migrating a fresh database and loading bench/config.yaml", flush=True)
    manage(env, "migrate", "--no-input", "-v0")
    load_env = {**env, "BENCH_UPSTREAM_URL": upstream_url, "BENCH_SLOW_UPSTREAM_URL": slow_url}
    print(manage(load_env, "loadconfig", "bench/config.yaml"))
    key = manage(
        env,
        "createapikey",
        *("--team", "bench", "--name", "bench"),
        *("--rpm", "100000000", "--tpm", "1000000000", "--budget-usd", "100000"),
    )

    web, server = servers.start(env, WEB_CONCURRENCY, logs, state_dir, services)
    gateway_base = f"http://127.0.0.1:{server['port']}"
    procs.wait_until(
        "the gateway's /readyz", lambda: procs.http(gateway_base + "/readyz")[0] == 200, services
    )
    groups = {"web": web.pid}
    if not NO_WORKER:
        groups.update(start_ingestion(env, logs, state_dir, services))
    url = gateway_base + "/v1/chat/completions"
    for body in (BODY, STREAM_BODY):
        status, _, answer = procs.http(url, body=body, headers=auth(key))
        if status != 200:
            raise BenchError(f"the gateway answered {status} to the benchmark request: {answer!r}")

    ctx = {
        "targets": ["direct", "gateway"],
        "urls": {"direct": upstream_url + "/chat/completions", "gateway": url},
        "keys": {"direct": UPSTREAM_KEY, "gateway": key},
        "groups": {"direct": {"upstream": upstream_pgid}, "gateway": groups},
        "memory_group": {"gateway": web.pid},
        "gateway_base": gateway_base,
        "web": web,
        "server": server,
        "body": BODY,
        "stream_body": STREAM_BODY,
        "slow_body": SLOW_BODY,
    }
    if not args.no_litellm:
        print(f"starting LiteLLM Proxy {litellm.LITELLM_VERSION}", flush=True)
        models = {"bench-small": upstream_url, "bench-slow": slow_url}
        lite = litellm.start(WEB_CONCURRENCY, models, UPSTREAM_KEY, BODY, state_dir, logs,
                             services)  # fmt: skip
        ctx["targets"].append("litellm")
        ctx["urls"]["litellm"], ctx["keys"]["litellm"] = lite["url"], lite["key"]
        ctx["groups"]["litellm"] = {"litellm": lite["service"].pid}
        ctx["memory_group"]["litellm"] = lite["service"].pid
        ctx["litellm_settings"] = lite["settings"]
    return ctx


def profile(ctx: dict, secs: float, out_dir: Path) -> str:
    """py-spy over every web process during one more c=1 run; kept out of the measured runs."""
    exe = ROOT / ".venv" / "bin" / "py-spy"
    if not exe.exists():
        print("py-spy is missing; installing it into .venv for --profile", flush=True)
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    pid = procs.python_descendant(ctx["web"].pid)
    if pid is None:
        raise BenchError("could not find the server's Python process")
    raw = out_dir / "profile-c1.txt"
    argv = [str(exe), "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    argv += ["--rate", "500", "--duration", str(int(secs) + 1), "--output", str(raw)]
    spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # py-spy attaches before the load starts
    wrk.run(ctx["wrk"], ctx["urls"]["gateway"], ctx["keys"]["gateway"], BODY, 1, 1, secs)
    _, err = spy_proc.communicate(timeout=60)
    if spy_proc.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy failed: {err.decode(errors='replace')}")
    summary = report.profile_summary(raw)
    (out_dir / "profile-c1-summary.txt").write_text(summary + "\n")
    return summary


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds of warm-up per target")
    parser.add_argument("--only", default=",".join(scenarios.ALL),
                        help="comma-separated scenarios: " + ",".join(scenarios.ALL))  # fmt: skip
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM comparison")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway at c=1")
    args = parser.parse_args()
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.only - set(scenarios.ALL)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(scenarios.ALL)}")
    return args


def main() -> int:
    args = parse_args()
    if not (ROOT / "tests" / "fake_upstream.py").exists():
        raise BenchError("tests/fake_upstream.py is missing: it is the benchmark's upstream")
    wrk_exe = wrk.ensure_wrk()
    if not args.no_litellm:
        litellm.ensure_installed()  # before anything starts: a failed install fails at once
    nofile = procs.raise_nofile()
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
    summary = None
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as state_dir:
        stores.reset_stores()
        try:
            env = base_env()
            ctx = start_services(env, logs, Path(state_dir), services, args)
            ctx["wrk"] = wrk_exe
            # CPU that other programs take meanwhile is reported: it moves latency a lot.
            own_groups = {os.getpgid(0), *(service.pid for service in services)}
            foreign_before, measure_start = procs.foreign_cpu_s(own_groups), time.monotonic()
            scenarios.warm_up(ctx, args.warmup)
            results = scenarios.measure(ctx, args.only, args.duration)
            foreign = procs.foreign_cpu_s(own_groups) - foreign_before
            foreign_share = foreign / (time.monotonic() - measure_start)
            closed = [r["gateway"] for r in results.values() if "requests" in r.get("gateway", {})]
            gateway_requests = sum(r["requests"] for r in closed)
            if NO_WORKER:
                # Ingestion after the load, alone on the cores: how long and how much CPU.
                groups = start_ingestion(env, logs, Path(state_dir), services)
                ingest_start, cpu_start = time.monotonic(), scenarios.cpu_by_group(groups)
            ingestion = stores.wait_for_ingestion(gateway_requests, 300 if NO_WORKER else 60)
            if NO_WORKER:
                cpu = scenarios.cpu_by_group(groups)
                ingestion["after_load_s"] = time.monotonic() - ingest_start
                ingestion["after_load_cpu_s"] = {k: cpu[k] - cpu_start[k] for k in cpu}
            for r in results.values():
                if "window" in r.get("gateway", {}):
                    r["self_reported"] = stores.self_reported(r["gateway"]["window"])
            if args.profile:
                summary = profile(ctx, args.duration, RESULTS)
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
            "server": ctx["server"],
            "gateway_max_in_flight": int(MAX_IN_FLIGHT),
            "gateway_upstream_max_connections": int(MAX_IN_FLIGHT),
            "celery_worker": "none during the load (BENCH_NO_WORKER)"
            if NO_WORKER
            else f"make worker, prefork concurrency {NPROC}",
            "usage_ingest_interval_s": USAGE_INGEST_INTERVAL_S,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "scenarios": sorted(args.only),
            "body_bytes": len(BODY),
            "wrk_timeout_s": wrk.TIMEOUT_S,
            "rlimit_nofile": nofile,
            "slow_upstream": {"chunk_delay_s": SLOW_CHUNK_DELAY_S, "events": SLOW_WORDS + 2},
            "litellm": ctx.get("litellm_settings") or "skipped (--no-litellm)",
        },
        "results": results,
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
        (ROOT / "docs" / "performance.json").write_text(json.dumps(result, indent=2) + "\n")
        print("updated docs/performance.md and docs/performance.json")
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
