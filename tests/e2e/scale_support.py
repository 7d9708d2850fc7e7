"""A production-shaped deployment on this machine, for the scale-out tests: nginx (Debian's) in
front of two gateway instances, each `make serve` with two worker processes on its own port,
one `make worker`, one `make beat`, all on the test run's Postgres database and Redis.

Every program runs in a process group of its own; `Cluster.stop()` ends each group (and only
those), and is called however the start or the tests went.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers_proc import base_env, free_port, start, stop, wait_for

# nginx in front of the instances. No upstream keepalive: a draining instance closes its idle
# connections, and nginx must not send a POST down one of them just as it is closed (a POST is
# not retried once sent). Passive health checks only (OSS nginx has no active ones): a refused
# connection counts as a failure, takes the instance out for fail_timeout, and the request goes
# to the other instance, which is safe for a POST because nothing was sent. Nothing else is
# retried (no `non_idempotent`, no http_503): a chat completion costs money, and one that
# failed half-way must not be sent twice.
NGINX_CONF = """\
worker_processes 1;
{user}
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$status $request_method $uri upstream=$upstream_addr '
                         'upstream_status=$upstream_status time=$request_time';
    access_log {tmp}/access.log upstreams;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream gateway {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Streams pass through event by event.
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            # Which instance answered: for the tests, and handy when debugging a deployment.
            add_header X-Upstream-Addr $upstream_addr always;
        }}
    }}
}}
"""
NGINX_SERVER = "        server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;"


def _make(target: str, **variables: str) -> list[str]:
    return ["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())]


@dataclass
class Instance:
    """One gateway instance: `make serve` on its own port, with WEB_CONCURRENCY processes."""

    name: str
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        return readiness(self.url) == 200


def readiness(url: str) -> int | str:
    """/readyz's status, or what kept it from answering ("refused", "timeout", ...)."""
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code
    except httpx.ConnectError:
        return "refused"
    except httpx.TimeoutException:
        return "timeout"
    except httpx.TransportError as exc:
        return type(exc).__name__


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, str]
    instances: list[Instance] = field(default_factory=list)
    others: dict[str, subprocess.Popen] = field(default_factory=dict)
    nginx_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def start(self) -> "Cluster":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for name in ("a", "b"):
            self.instances.append(Instance(name, free_port(), self.tmp / f"web-{name}.log"))
        for instance in self.instances:
            env = dict(
                self.env,
                # Per instance, as on separate hosts: the metric files and the usage spool.
                PROMETHEUS_MULTIPROC_DIR=str(self.tmp / f"metrics-{instance.name}"),
                GATEWAY_SPOOL_DIR=str(self.tmp / f"spool-{instance.name}"),
            )
            args = _make("serve", PORT=str(instance.port), WEB_CONCURRENCY="2")
            instance.proc = start(args, env=base_env(**env), log_path=instance.log)
        for role in ("worker", "beat"):
            self.others[role] = start(
                _make(role), env=base_env(**self.env), log_path=self.tmp / f"{role}.log"
            )
        self.nginx_port = free_port()
        self.others["nginx"] = self._start_nginx()
        with ThreadPoolExecutor(len(self.instances)) as pool:
            list(pool.map(self._wait_ready, self.instances))
        wait_for(self._nginx_answers, timeout=20, what="nginx")

    def _wait_ready(self, instance: Instance) -> None:
        wait_for(instance.ready, timeout=120, what=f"instance {instance.name} to be ready")

    def _start_nginx(self) -> subprocess.Popen:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"  # sbin: not on every user's PATH
        if not os.path.exists(binary):
            pytest.fail("nginx is missing: apt-get install nginx (.ci/run does)")
        conf = self.tmp / "nginx.conf"
        servers = "\n".join(NGINX_SERVER.format(port=i.port) for i in self.instances)
        # Run as root (a CI container), nginx's workers would switch to `nobody`.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(tmp=self.tmp, port=self.nginx_port, servers=servers, user=user)
        )
        args = [binary, "-c", str(conf), "-p", str(self.tmp), "-g", "daemon off;"]
        return start(args, env=base_env(), log_path=self.tmp / "nginx.out")

    def _nginx_answers(self) -> bool:
        assert self.others["nginx"].poll() is None, self.log_tail("error.log")
        return readiness(self.url) == 200

    def sigterm(self, instance: Instance) -> float:
        """SIGTERM to the instance's main process only (`make`, as an orchestrator signals a
        container's first process); returns when it was sent (monotonic)."""
        sent = time.monotonic()
        instance.proc.send_signal(signal.SIGTERM)
        return sent

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """Every process group this cluster started, the balancer first; each one whatever
        happened to the others."""
        procs = [self.others.get("nginx"), *(i.proc for i in self.instances)]
        procs += [self.others.get("beat"), self.others.get("worker")]
        for proc in procs:
            if proc is None:
                continue
            try:
                stop(proc)
            except Exception:  # the next group must still be stopped
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
