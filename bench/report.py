"""Turning measurements into the results JSON, a markdown table and docs/performance.md."""

import os
import platform
import re
import subprocess
import textwrap
from collections import Counter
from pathlib import Path

import tables

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


def targets(result: dict) -> list[tuple[str, str, str]]:
    """The issue's targets: (target, this run's figure, met / missed / not measured)."""
    res = result["results"]
    out = []

    def check(name: str, value, ok, text: str) -> None:
        out.append((name, text if value is not None else "not measured",
                    "not measured" if value is None else ("met" if ok else "missed")))  # fmt: skip

    c1 = res.get("c1", {}).get("added", {}).get("gateway")
    v = c1["p50_ms"] if c1 else None
    check("Added p50 at concurrency 1 <= 1.5 ms", v, v is not None and v <= 1.5, f"{v or 0:.2f} ms")
    half = res.get("paced50", {}).get("added", {}).get("gateway")
    v = half["p99_ms"] if half else None
    check("Added p99 at 50% of capacity <= 5 ms", v, v is not None and v <= 5, f"{v or 0:.2f} ms")
    st = res.get("stream", {}).get("added", {}).get("gateway")
    v = st["first_event_p50_ms"] if st else None
    check("Streaming time to first byte overhead <= 2 ms at c=1 (first event, p50)", v,
          v is not None and v <= 2, f"{v or 0:.2f} ms")  # fmt: skip
    r = tables.ratios(result)
    v = r["throughput"]
    check("Saturated throughput >= 5x LiteLLM's", v, v is not None and v >= 5, f"{v or 0:.1f}x")
    below = [res[k]["gateway"] for k in ("c1", "paced25", "paced50", "paced75") if k in res]
    v = sum(x["error_count"] for x in below) if below else None
    check("No error below capacity (c=1, paced 25/50/75%)", v, v == 0, f"{v} errors")
    above = [res[k]["gateway"] for k in ("c16", "c64") if k in res]
    bad = sum(n for x in above for k, n in x["errors_by_kind"].items() if k != "503")
    bare = sum(x.get("503_without_retry_after", 0) for x in above)
    n503 = sum(x["errors_by_kind"].get("503", 0) for x in above)
    v = bad + bare if above else None
    check("At and above capacity (c=16, c=64): only 503 with Retry-After", v, v == 0,
          f"{n503 - bare} 503s with Retry-After, {bare} without, {bad} other errors")  # fmt: skip
    mem = res.get("memory", {}).get("gateway")
    v = mem["pss_mb_per_1000"] if mem else None
    ok = v is not None and v < 200 and mem["all_served"]
    served = f", {mem['streaming']}/{mem['requested']} served" if mem else ""
    check("Memory per 1,000 open streams < 200 MB", v, ok, f"{v or 0:.0f} MB{served}")
    return out


def markdown(result: dict) -> str:
    m, cfg = result["machine"], result["settings"]
    lite = cfg["litellm"]
    lite_text = (
        f"LiteLLM Proxy {lite['version']} (`{lite['command']}`, no database, no Redis, "
        f"LITELLM_LOG=ERROR, set_verbose off) against the same fake upstream"
        if isinstance(lite, dict)
        else "LiteLLM: skipped in this run (--no-litellm)"
    )
    r = tables.ratios(result)
    lines = [
        f"Run of {result['finished_at']} on commit `{m['git_commit']}`"
        + (" (with uncommitted changes)" if m["git_dirty"] else "")
        + ".",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}, {m['wrk']}. Other programs on the machine: "
        f"1-minute load average {m['load_average_before']:.2f} before the run; they used "
        f"{m['other_programs_cpu_share']:.0%} of one CPU during the measurements.",
        f"- Gateway: {cfg['server']['command']}, {cfg['web_concurrency']} web processes, "
        f"GATEWAY_MAX_IN_FLIGHT={cfg['gateway_max_in_flight']} and "
        f"GATEWAY_UPSTREAM_MAX_CONNECTIONS={cfg.get('gateway_upstream_max_connections', 200)} "
        "(for the open streams), Postgres and Redis on "
        f"localhost, Celery worker: {cfg['celery_worker']}, usage ingested every "
        f"{cfg['usage_ingest_interval_s']} s.",
        f"- Comparison: {lite_text}.",
        f"- Load: wrk, {cfg['duration_s']} s per measurement after {cfg['warmup_s']} s of "
        f"warm-up per target, request body {cfg['body_bytes']} bytes; the targets of one "
        "scenario run one after the other.",
        "",
        "| target | this run | |",
        "| --- | --- | --- |",
        *[f"| {name} | {value} | {verdict} |" for name, value, verdict in targets(result)],
        "",
    ]
    if r["throughput"]:
        lines += [
            f"Saturated throughput: gateway {r['gateway_rps']:.0f} req/s, LiteLLM "
            f"{r['litellm_rps']:.0f} req/s ({r['throughput']:.1f}x)"
            + (
                f"; LiteLLM adds {r['added_p50_c1']:.1f}x the gateway's p50 at c=1."
                if r["added_p50_c1"]
                else "."
            ),
            "",
        ]
    lines += [tables.latency(result), ""]
    samples = tables.error_samples(result)
    if samples:
        lines += ["Errors: the first body of each status, truncated.", "", samples, ""]
    lines += [
        "Added latency is the proxy minus direct at the same percentile. The in-process overhead "
        "is the gateway's own figure from the usage log (time in the process minus upstream "
        "time) for the requests of that measurement.",
        "",
        tables.added(result),
    ]
    for title, table in (
        ("Paced runs: offered and achieved rates (exponential think time per connection).",
         tables.paced(result)),
        ("Streaming at c=1 (own asyncio client): time to the response head, to the first "
         "event, and to the end of the stream.", tables.streaming(result)),
        ("Open streams from a slow upstream (one event a second): the sum of the PSS of the "
         "proxy's processes before and with all streams open.", tables.memory(result)),
        ("CPU time per request, per process group (from /proc, during each measurement).",
         tables.cpu(result)),
        ("Gateway phases from /metrics, per scenario: mean / ~p50 / ~p99 ms.",
         tables.phases(result)),
        ("Garbage collection in the web processes, per scenario.", tables.gc(result)),
    ):  # fmt: skip
        if table.startswith("|"):
            lines += ["", title, "", table]
        elif table:  # a sentence instead of a table ("not exposed")
            lines += ["", table]
    ing = result.get("ingestion") or {}
    if ing:
        text = (
            f"Usage ingestion: {ing['rows']} usage rows in Postgres for "
            f"{ing['gateway_requests']} requests wrk counted through the gateway (plus warm-up, "
            f"streams and in-flight ones); stream backlog at the end: {ing['backlog']}."
        )
        if "after_load_s" in ing:
            cpu_s = ", ".join(f"{k} {v:.1f} s" for k, v in ing["after_load_cpu_s"].items())
            text += f" Ingested after the load in {ing['after_load_s']:.1f} s (CPU: {cpu_s})."
        lines += ["", text]
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
