"""The admin login over plain http://127.0.0.1 works in the embedded default (`make run`), with
real cookies through a real server: the secure-cookie defaults are for production mode only."""

import re

import httpx
import pytest

from .helpers_proc import PYTHON, base_env, free_port, manage, start, stop, wait_for

PASSWORD = "embedded-admin-password-42"


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embedded-admin")
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CELERY_TASK_ALWAYS_EAGER=None,
        WEB_CONCURRENCY="1",
        SQLITE_PATH=str(tmp / "gateway.sqlite3"),
        STATIC_ROOT=str(tmp / "static"),
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    for command in (["migrate", "--no-input", "-v0"], ["createsuperuser", "--no-input"]):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    log = tmp / "server.log"
    args = [PYTHON, "-m", "uvicorn", "gateway.asgi:application", "--port", str(port)]
    server = start(args, env=env, log_path=log)
    base_url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert server.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what="the embedded server")
        yield base_url
    finally:
        stop(server)


def test_admin_login_over_plain_http_works_in_embedded_mode(embedded_server):
    with httpx.Client(base_url=embedded_server, timeout=30) as browser:
        form = browser.get("/admin/login/?next=/admin/")
        assert form.status_code == 200
        assert "secure" not in form.headers["set-cookie"].lower()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token,
                "username": "admin",
                "password": PASSWORD,
                "next": "/admin/",
            },
        )
        assert response.status_code == 302, response.text[:500]
        assert response.headers["location"] == "/admin/"
        # The session cookie came back over http, so the dashboard opens.
        dashboard = browser.get("/admin/")
        assert dashboard.status_code == 200
        assert "Site administration" in dashboard.text
