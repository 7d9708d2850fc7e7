"""The stop signal as one web process sees it: not ready at once, and its listening socket shut
down for every process that shares it (uvicorn's supervisor and the sibling workers)."""

import signal
import socket
import subprocess
import textwrap

import pytest

from gateway import shutdown

from .helpers_proc import PYTHON, ROOT, base_env


@pytest.fixture
def draining(monkeypatch):
    monkeypatch.setattr(shutdown, "_draining", True)


@pytest.mark.django_db
def test_readyz_is_ok_until_the_stop_signal(client):
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_fails_while_draining_and_liveness_holds(client, draining):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "draining"}
    assert client.get("/healthz").status_code == 200  # alive: it is finishing its requests


# Run in a process of its own: stop_listening() shuts down every listening socket of the
# process that calls it, and this test run's own servers listen in this one.
_SHARED_SOCKET = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    import django
    django.setup()
    from gateway import shutdown

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    child = os.fork()
    if child == 0:  # the supervisor's side: holds the socket, never accepts
        time.sleep(30)
        os._exit(0)
    sys.stdin.readline()  # the test connected once: now the stop signal
    print(shutdown.stop_listening(), flush=True)
    sys.stdin.readline()
    os.kill(child, signal.SIGKILL)
    """
)


def test_stop_listening_refuses_connections_for_every_process_sharing_the_socket():
    proc = subprocess.Popen(
        [PYTHON, "-c", _SHARED_SOCKET],
        cwd=ROOT,
        env=base_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        # Before: the kernel completes the handshake (the socket listens in both processes).
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert int(proc.stdout.readline()) == 1
        # After: refused, although the forked process still holds a descriptor of the socket.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        proc.stdin.write("done\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
