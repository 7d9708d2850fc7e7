"""End-to-end fixtures: the real gateway ASGI app and a fake OpenAI upstream, both on sockets.

Both servers live for the whole session (starting uvicorn per test would dominate the run
time); each test gets a reset upstream, freshly loaded configuration and a new key. The gateway
serves from another thread, so tests that call it use `transactional_db`: only committed data
is visible to the server thread.
"""

import asyncio
import socket
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from gateway.config import config_load
from tenants.models import Team
from tenants.services import api_key_issue
from tests.fake_upstream import FakeUpstream, ServerThread
from tests.helpers_net import WebProcess
from tests.helpers_proc import subprocess_database_url

from .budget_support import OUTPUT_TOKENS, PROMPT_TOKENS
from .support import CONFIG, PROVIDER_SECRET, TEAM, Gateway


@pytest.fixture(scope="session")
def closed_port():
    """A port that refuses connections: bound (so nothing else takes it) but never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="session")
def fake_upstream_server():
    fake = FakeUpstream(api_key=PROVIDER_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake_upstream_server):
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker):
    # Depending on django_db_setup makes this stop before the test database is dropped.
    from gateway.asgi import application

    # With lifespan, as `make serve` runs it: shutdown closes the upstream connection pool.
    # Without uvicorn's own X-Forwarded-For handling (on by default for peers on 127.0.0.1,
    # which every test client is): the gateway resolves client addresses itself, from
    # GATEWAY_TRUSTED_PROXIES, and tests must see the peer address it starts from.
    server = ServerThread(application, lifespan="on", proxy_headers=False)
    server.start()
    yield server.url
    server.stop()
    # The server's database work ran on asgiref's shared executor thread; close what it left
    # open there, or the test database cannot be dropped at the end of the session.
    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all)())


def load_e2e_config(url: str, upstream, closed_port: int, key_name: str = "e2e") -> Gateway:
    """The e2e configuration loaded (upstream at the fake, a closed port for the dead
    deployment) and a new key of the e2e team, for a gateway serving at `url`."""
    config_load(
        text=CONFIG.format(
            base=upstream.base_url,
            secret=PROVIDER_SECRET,
            closed=f"http://127.0.0.1:{closed_port}/v1",
            team=TEAM,
        )
    )
    team = Team.objects.get(slug=TEAM)
    issued = api_key_issue(team=team, name=key_name)
    return Gateway(url=url, key=issued.secret, api_key=issued.api_key, team=team)


@pytest.fixture
def gateway(gateway_server, upstream, closed_port, transactional_db) -> Gateway:
    return load_e2e_config(gateway_server, upstream, closed_port)


@pytest.fixture
def web_process(gateway, tmp_path):
    """Start a web process (uvicorn as a subprocess, as in production) on the test's committed
    configuration, the test database and Redis, one worker, with these settings on top; each is
    stopped at the end, and its log's tail printed for a failing test's report."""
    started: list[WebProcess] = []

    def start(**env: str) -> WebProcess:
        env = {"DATABASE_URL": subprocess_database_url(), "REDIS_URL": settings.REDIS_URL,
               "WEB_CONCURRENCY": "1", **env}  # fmt: skip
        started.append(WebProcess(tmp_path, **env).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()
        print(process.log.read_text()[-3000:])


@pytest.fixture
def exact_usage(upstream):
    """The fake answers with exactly the output tokens the budget tests ask for, so a
    request's cost equals its reservation (tests/e2e/budget_support.py)."""
    before = upstream.prompt_tokens, upstream.completion_tokens
    upstream.set_usage(PROMPT_TOKENS, OUTPUT_TOKENS)
    yield upstream
    upstream.set_usage(*before)


# After each transactional test Django empties the tables and re-runs post_migrate (content types,
# permissions) for the available apps; limited to the gateway's own apps that takes a fraction of
# the time. Tests that need more (the admin) carry their own django_db marker. Every app whose
# rows the gateway fixture writes is listed (loading the config writes audit events and
# compliance rows), or those rows would outlive the test and show in a later one.
GATEWAY_APPS = ["gateway", "tenants", "routing", "policies", "billing", "audit", "compliance"]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if (
            here in Path(item.fspath).parents
            and "gateway" in item.fixturenames
            and item.get_closest_marker("django_db") is None
        ):
            item.add_marker(pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS))


# The deployment health tests' fixtures (flaky and dead providers in groups).
from .health_support import breaker, flaky, pair  # noqa: E402, F401
