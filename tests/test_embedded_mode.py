"""The embedded default, as `make run` starts it: no DATABASE_URL, no REDIS_URL; SQLite, in-process
state, the mock models. Real programs in subprocesses: migrate, seeddemo, uvicorn."""

import re
import sqlite3

import httpx
import orjson
import pytest

from .helpers_proc import PYTHON, base_env, free_port, manage, start, stop, wait_for

SECRET_RE = re.compile(r"sk-gw-[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A migrated, seeded embedded gateway listening on a free port; (base_url, key, db path)."""
    tmp = tmp_path_factory.mktemp("embedded")
    db_path = tmp / "gateway.sqlite3"
    # No DATABASE_URL / REDIS_URL: that is what makes it the embedded default. (The project's
    # .env, if any, only carries the two secrets, which are set here explicitly anyway.)
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CELERY_TASK_ALWAYS_EAGER=None,
        WEB_CONCURRENCY="1",
        SQLITE_PATH=str(db_path),
        STATIC_ROOT=str(tmp / "static"),
    )
    collected = manage("collectstatic", "--no-input", "-v0", env=env)
    assert collected.returncode == 0, collected.stderr
    migrated = manage("migrate", "--no-input", "-v0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert db_path.exists()  # proof that it really runs on the SQLite file

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    seeded = manage("seeddemo", "--base-url", base_url, env=env)
    assert seeded.returncode == 0, seeded.stderr
    key = SECRET_RE.search(seeded.stdout).group(0)

    log = tmp / "server.log"
    server = start(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "gateway.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        log_path=log,
    )
    try:

        def ready():
            assert server.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what="the embedded server to answer /healthz")
        yield base_url, key, db_path
    finally:
        stop(server)


def _usage_rows(db_path) -> list[tuple]:
    # Read-only, straight from the file the server writes; the server keeps running meanwhile.
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=20) as conn:
        return conn.execute(
            "SELECT request_id, stream, status_code, requested_model, input_tokens, "
            "output_tokens, key_prefix FROM billing_usagerecord"
        ).fetchall()


def _chat(stream: bool) -> dict:
    return {
        "model": "mock-small",
        "stream": stream,
        "messages": [{"role": "user", "content": "Hello from the embedded test"}],
    }


def test_embedded_gateway_answers_plain_and_streamed_chat_and_logs_usage(embedded):
    base_url, key, db_path = embedded
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        response = client.post("/v1/chat/completions", json=_chat(stream=False))
        assert response.status_code == 200, response.text
        body = response.json()
        reply = body["choices"][0]["message"]["content"]
        assert "You said: Hello from the embedded test" in reply
        assert body["usage"]["completion_tokens"] > 0
        plain_id = response.headers["x-request-id"]
        # The demo team's policy is admitted in process: its limits answer in OpenAI's headers.
        assert response.headers["x-ratelimit-limit-requests"] == "600"
        assert response.headers["x-ratelimit-remaining-requests"] == "599"

        chunks = []
        with client.stream("POST", "/v1/chat/completions", json=_chat(stream=True)) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            stream_id = streamed.headers["x-request-id"]
            for line in streamed.iter_lines():
                if line.startswith("data: "):
                    chunks.append(line.removeprefix("data: "))
    assert chunks[-1] == "[DONE]"
    text = "".join(
        choice.get("delta", {}).get("content") or ""
        for chunk in chunks[:-1]
        for choice in orjson.loads(chunk)["choices"]
    )
    assert "You said: Hello from the embedded test" in text

    # The in-process writer stores rows in the background: poll the file with a deadline.
    def both_rows():
        rows = _usage_rows(db_path)
        return rows if len(rows) >= 2 else None

    rows = wait_for(both_rows, timeout=30, what="both usage rows in SQLite")
    by_id = {row[0]: row for row in rows}
    assert by_id[plain_id][1:4] == (0, 200, "mock-small")
    assert by_id[stream_id][1:4] == (1, 200, "mock-small")
    assert all(row[5] > 0 for row in by_id.values())
    assert all(key.startswith(row[6]) for row in by_id.values())


def test_embedded_gateway_refuses_an_unknown_key(embedded):
    base_url, _, _ = embedded
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        json=_chat(stream=False),
        headers={"Authorization": "Bearer sk-gw-not-a-real-key"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid API key"


def test_embedded_gateway_is_ready_without_redis(embedded):
    base_url, _, _ = embedded
    response = httpx.get(f"{base_url}/readyz", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "database", "state")} == {
        "status": "ok",
        "database": True,
        "state": True,
    }
    assert body["routing"]["age_s"] is not None
    assert body["routing"]["skipped"] == []


def test_embedded_gateway_serves_the_admin_static_files_with_debug_off(embedded):
    base_url, _, _ = embedded
    response = httpx.get(f"{base_url}/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
