"""Outages on demand, without touching the shared Postgres and Redis: a TCP proxy a test can cut
or make hold replies, a throwaway redis-server it can restart, and gateway web processes that
talk through them."""

import asyncio
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from .helpers_proc import PYTHON, base_env, free_port, start, stop, wait_for


def url_through(url: str, proxy: "TcpProxy") -> str:
    """The same service URL (credentials, database, path) with the proxy as its host."""
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}" if credentials else host))


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target, until the test says otherwise.

    - cut(): stop listening (new connections are refused) and reset every open connection, as
      when the server behind it dies;
    - restore(): listen again, on the same port;
    - hold_replies_containing(marker): the first reply chunk on any connection that contains
      `marker` is held back (with everything after it on that connection) until release();
      `held` is set once that happened. The request has reached the server by then: a test can
      change the world between the server's answer and the client's receiving it.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.held = threading.Event()
        self._marker: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()
        self._release: asyncio.Event | None = None
        self._cuts = 0

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> "TcpProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    async def _listen(self) -> None:
        if self._release is None:
            self._release = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _handle(self, reader, writer) -> None:
        # A connection accepted just before cut() may still be connecting to the target while
        # cut() resets the open ones: it must not survive the cut either.
        cuts = self._cuts
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if cuts != self._cuts:
            writer.transport.abort()
            up_writer.transport.abort()
            return
        for w in (writer, up_writer):
            self._transports.add(w.transport)
        await asyncio.gather(
            self._pipe(reader, up_writer, replies=False),
            self._pipe(up_reader, writer, replies=True),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            self._transports.discard(w.transport)
            w.transport.abort()

    async def _pipe(self, src, dst, *, replies: bool) -> None:
        holding = False
        while data := await src.read(65536):
            if replies and (holding or (self._marker is not None and self._marker in data)):
                holding = True
                self.held.set()
                await self._release.wait()
            dst.write(data)
            await dst.drain()
        dst.transport.abort()

    def hold_replies_containing(self, marker: bytes) -> None:
        async def _arm() -> None:
            self._release.clear()

        self._call(_arm())
        self.held.clear()
        self._marker = marker

    def release(self) -> None:
        self._marker = None
        self._loop.call_soon_threadsafe(self._release.set)

    async def _cut(self) -> None:
        self._cuts += 1
        self._server.close()
        await self._server.wait_closed()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def restore_if_cut(self) -> None:
        if not self._server.is_serving():
            self.restore()

    async def _shutdown(self) -> None:
        self._release.set()
        if self._server.is_serving():
            await self._cut()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class RedisServer:
    """A throwaway redis-server on a free port, no persistence; stop() and start() again keep
    the port, as a restarted server would."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log_dir / f"redis-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._proc = start([*args, "--appendonly", "no"], env=base_env(), log_path=self._log)

        def ready() -> bool:
            try:
                import redis

                return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
            except Exception:
                return False

        wait_for(ready, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None


class WebProcess:
    """`uvicorn gateway.asgi:application` as a subprocess, the way production runs it."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"web-{self.port}.log"
        env.setdefault("GATEWAY_SPOOL_DIR", str(log_dir / "spool"))
        self._env = base_env(**env)
        self._proc: subprocess.Popen | None = None

    def start(self) -> "WebProcess":
        args = [PYTHON, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1"]
        self._proc = start([*args, "--port", str(self.port)], env=self._env, log_path=self.log)

        def ready() -> bool:
            assert self._proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what=f"the web process on port {self.port}")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None

    def get(self, path: str, key: str, timeout: float = 10) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=timeout)

    def post(self, path: str, key: str, json: dict, timeout: float = 10) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return httpx.post(f"{self.url}{path}", headers=headers, json=json, timeout=timeout)
