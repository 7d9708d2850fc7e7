"""Turning measurements into the results JSON, a markdown table and docs/performance.md."""

import os
import platform
import re
import subprocess
import textwrap
from collections import Counter
from pathlib import Path

BEGIN = "<!-- BEGIN bench results: written by `make bench` (bench/run.py); edits here are lost -->"
END = "<!-- END bench results -->"


def machine_facts(repo: Path) -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    status = ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "git_commit": _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
        # Tracked files only, and not the file this script rewrites itself.
        "git_dirty": bool(_first_line([*status, "--", ".", ":!docs/performance.md"])),
    }


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def results_table(scenarios: list[dict]) -> str:
    rows = [
        "| scenario | wrk threads/conns | WEB_CONCURRENCY | target | req/s | p50 ms | p90 ms "
        "| p99 ms | errors |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios:
        for target in ("direct", "gateway"):
            r = s[target]
            rows.append(
                f"| {s['name']} | {s['threads']}/{s['connections']} | {s['web_concurrency']} "
                f"| {target} | {r['rps']:.0f} | {_ms(r['p50_us'])} | {_ms(r['p90_us'])} "
                f"| {_ms(r['p99_us'])} | {r['error_count']} |"
            )
    return "\n".join(rows)


def added_table(scenarios: list[dict]) -> str:
    rows = [
        "| scenario | added p50 ms | added p99 ms | gateway req/s vs direct "
        "| in-process overhead p50 / p99 ms | web CPU ms per request |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios:
        a, own = s["added"], s.get("self_reported") or {}
        ratio = s["gateway"]["rps"] / s["direct"]["rps"] if s["direct"]["rps"] else 0.0
        own_text = f"{own['p50_ms']:.2f} / {own['p99_ms']:.2f} (n={own['rows']})" if own else "n/a"
        rows.append(
            f"| {s['name']} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {ratio:.0%} | {own_text} "
            f"| {s['gateway']['web_cpu_ms_per_request']:.2f} |"
        )
    return "\n".join(rows)


def markdown(result: dict) -> str:
    m, cfg = result["machine"], result["settings"]
    lines = [
        f"Run of {result['finished_at']} on commit `{m['git_commit']}`"
        + (" (with uncommitted changes)" if m["git_dirty"] else "")
        + ".",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}, {m['wrk']}. Other programs on the machine: "
        f"1-minute load average {m['load_average_before']:.2f} before the run; they used "
        f"{m['other_programs_cpu_share']:.0%} of one CPU during the measurements.",
        f"- Gateway: `make serve` (uvicorn, uvloop + httptools, --workers WEB_CONCURRENCY), "
        f"Postgres and Redis on localhost, a Celery worker ({cfg['celery_worker']}) and beat "
        f"ingesting usage every {cfg['usage_ingest_interval_s']} s during the run.",
        f"- Load: wrk, {cfg['duration_s']} s per measurement after {cfg['warmup_s']} s of "
        f"warm-up, request body {cfg['body_bytes']} bytes; direct and gateway runs alternate "
        "within one run of the script.",
        "",
        results_table(result["scenarios"]),
        "",
        "Added latency is gateway minus direct at the same percentile. The in-process overhead "
        "is the gateway's own figure from the usage log (time in the process minus upstream "
        "time, where upstream time includes the HTTP client's own work) for the requests of "
        "that measurement. Web CPU is the CPU time of all web processes divided by requests.",
        "",
        added_table(result["scenarios"]),
    ]
    half = next((s for s in result["scenarios"] if s.get("pacing")), None)
    if half:
        p = half["pacing"]
        lines += [
            "",
            f"The half-capacity scenario paces each of its {half['connections']} connections "
            f"with {p['delay_ms']} ms of think time, aiming at {p['target_rps']:.0f} req/s = half "
            f"of the gateway's saturated throughput; it reached {half['gateway']['rps']:.0f} "
            "req/s through the gateway.",
        ]
    ing = result.get("ingestion") or {}
    if ing:
        lines += [
            "",
            f"Usage ingestion kept up: {ing['rows']} usage rows in Postgres for "
            f"{ing['gateway_requests']} requests wrk counted through the gateway (plus warm-up "
            f"and in-flight ones); stream backlog at the end: {ing['backlog']}.",
        ]
    return "\n".join(_wrap(line) for line in lines)


def _wrap(line: str) -> str:
    # Prose at the width of the hand-written docs; table rows must stay on one line.
    if not line or line.startswith("|"):
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, width=96, subsequent_indent=indent, break_on_hyphens=False)


def update_doc(doc: Path, body: str) -> None:
    """Replace the marked section; append it if the document has none yet."""
    section = f"{BEGIN}\n{body}\n{END}"
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n## Latest results\n\n" + section + "\n"
    doc.write_text(text)


_LINE = re.compile(r":\d+\)$")
# Frames of the thread that runs the event loop; samples of other threads (the psycopg pool's,
# sync_to_async's executor) are reported only as a total.
_LOOP_FRAME = "Server.run (uvicorn/server.py)"


def profile_summary(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive shares per function on the event loop, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    loop = other = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # py-spy prefixes one "process ..." label per process level; line numbers are dropped
        # so every sample of one function adds up.
        frames = [_LINE.sub(")", f) for f in stack.split(";") if not f.startswith("process ")]
        if _LOOP_FRAME not in frames:
            other += n
            continue
        loop += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not loop:
        return "no event-loop samples"
    out = [
        f"{loop} event-loop samples; {other} in other threads, not analysed (idle excluded)",
        "",
        "Top self time on the event loop:",
    ]
    out += [f"  {n / loop:6.1%}  {f}" for f, n in own.most_common(top)]
    out += ["", "Top inclusive time on the event loop:"]
    out += [f"  {n / loop:6.1%}  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(out)
