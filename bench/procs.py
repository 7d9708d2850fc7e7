"""Child processes for the benchmark: started in their own process group, always stopped.

Each service gets a new session, so a Ctrl-C in the terminal reaches only run.py, which then
stops every group it started in order; `make serve` forks uvicorn, which forks its workers, and
signalling the group reaches all of them.
"""

import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class BenchError(RuntimeError):
    """The benchmark could not be set up; the message says which step and why."""


def free_port() -> int:
    # Bound then released: a tiny race with other programs, acceptable on a bench machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    def __init__(self, name: str, argv: list[str], env: dict, cwd: Path, log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds its own descriptor
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited early; its log ends with:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the whole group (graceful for uvicorn and Celery), SIGKILL what lingers."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session made the child its group's leader
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(pgid):
                self.proc.poll()  # reap the leader so it does not linger as a zombie
                time.sleep(0.1)
            if not _group_alive(pgid):
                break
        self.proc.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies still count for killpg; a group of only zombies is finished.
    return any(_state(pid) not in ("Z", "") for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return raw[raw.rindex(")") + 2 :].split()


def _state(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by a process group (threads that exited are included)."""
    ticks = 0
    for pid in _group_members(pgid):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


# Shared services that the benchmark itself loads; their CPU is not "someone else's".
_SHARED_SERVICES = {"postgres", "redis-server"}


def foreign_cpu_s(own_groups: set[int]) -> float:
    """CPU seconds used by every process outside the benchmark's groups and shared services.

    Children's time reaped by a living parent is included (cutime/cstime), so short-lived
    processes, such as a test run started meanwhile, are counted too.
    """
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if not fields or int(fields[2]) in own_groups:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm not in _SHARED_SERVICES:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and (f := _stat_fields(int(e.name))) and int(f[1]) == pid
    ]


def python_descendant(pid: int) -> int | None:
    """The first Python process under pid (the uvicorn supervisor under `make serve`)."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        try:
            exe = os.readlink(f"/proc/{current}/exe")
        except OSError:
            exe = ""
        if "python" in Path(exe).name:
            return current
        queue.extend(children(current))
    return None


def wait_until(what: str, probe, services: list[Service], timeout_s: float = 60.0) -> None:
    """Poll probe() until it returns True; fail fast if a service we depend on died."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        try:
            if probe():
                return
        except (OSError, urllib.error.URLError) as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what} ({last_error})")


def http(url: str, *, body: bytes | None = None, headers: dict | None = None, timeout=5.0):
    """One request; returns (status, headers, body) and never raises on HTTP error statuses."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def group_memory_kib(pgid: int) -> dict:
    """Sum of PSS and of RSS (KiB) over a process group, from /proc/PID/smaps_rollup.

    PSS splits pages shared between processes (the forked web workers share their parent's
    code) among them, so the sum counts each page once; RSS would count them per process.
    """
    pss = rss = count = 0
    for pid in _group_members(pgid):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # exited meanwhile
        count += 1
        for line in text.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return {"pss_kib": pss, "rss_kib": rss, "processes": count}


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; the services started from here
    inherit it (1,000 open streams need 2,000+ descriptors in one process group)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
