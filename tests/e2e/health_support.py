"""What the deployment health tests share: a configuration with a flaky, a steady and a dead
provider in groups, and reads of the shared health state."""

import time

import pytest

from gateway.config import config_load
from routing import health
from routing.models import Deployment
from tenants.models import Team
from tenants.services import api_key_issue
from tests.fake_upstream import FakeUpstream

from .support import PROVIDER_SECRET, TEAM, Gateway

HEALTH_CONFIG = """
providers:
  - {{name: steady, kind: openai_compatible, api_base: "{base}", api_key: "{secret}"}}
  # A short timeout, so a hanging upstream costs half a second before the fallback.
  - {{name: flaky, kind: openai_compatible, api_base: "{flaky}", api_key: "{secret}",
      timeout_s: 0.5}}
  - {{name: dead, kind: openai_compatible, api_base: "{closed}", api_key: "{secret}"}}
models:
  # The flaky deployment is the cheaper one: tried first while it is healthy.
  - name: chat-pair
    deployments:
      - {{provider: flaky, model: flaky-chat, input_cost_per_mtok: 0.1, output_cost_per_mtok: 0.2}}
      - {{provider: steady, model: steady-chat, input_cost_per_mtok: 1, output_cost_per_mtok: 2}}
  - name: chat-dead-first
    deployments:
      - {{provider: dead, model: dead-chat, input_cost_per_mtok: 0.1, output_cost_per_mtok: 0.2}}
      - {{provider: steady, model: steady-chat-2, input_cost_per_mtok: 1,
         output_cost_per_mtok: 2}}
  - name: chat-flaky-only
    deployments:
      - {{provider: flaky, model: flaky-alone}}
teams:
  - slug: {team}
    allowed_models: [chat-pair, chat-dead-first, chat-flaky-only]
"""

CHAT = {"messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture
def breaker(settings):
    """Small numbers, and no per-process health cache: each request reads the shared state."""
    settings.GATEWAY_HEALTH_CACHE_S = 0
    settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES = 3
    settings.GATEWAY_BREAKER_MIN_OUTCOMES = 100
    settings.GATEWAY_BREAKER_OPEN_S = 0.5
    settings.GATEWAY_BREAKER_MAX_OPEN_S = 1.0
    # One attempt per deployment, so these tests count outcomes exactly; retries of the same
    # deployment have their own tests (test_retries.py).
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    return settings


@pytest.fixture
def flaky():
    fake = FakeUpstream(api_key=PROVIDER_SECRET).start()
    yield fake
    fake.stop()


def load_health_config(base: str, flaky_base: str, closed_port: int) -> Gateway:
    config_load(
        text=HEALTH_CONFIG.format(
            base=base,
            flaky=flaky_base,
            closed=f"http://127.0.0.1:{closed_port}/v1",
            secret=PROVIDER_SECRET,
            team=TEAM,
        )
    )
    team = Team.objects.get(slug=TEAM)
    issued = api_key_issue(team=team, name="health")
    return Gateway(url="", key=issued.secret, api_key=issued.api_key, team=team)


@pytest.fixture
def pair(gateway_server, upstream, flaky, closed_port, transactional_db, breaker) -> Gateway:
    found = load_health_config(upstream.base_url, flaky.base_url, closed_port)
    found.url = gateway_server
    return found


def deployment_id(upstream_model: str) -> int:
    return Deployment.objects.get(upstream_model=upstream_model).pk


def state_of(upstream_model: str) -> health.Health:
    found = health.current_sync(deployment_id(upstream_model))
    assert found is not None
    return found


def wait_state(upstream_model: str, state: str, timeout_s: float = 5.0) -> health.Health:
    """Reports are sent after the answer: poll (a bound on the wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = state_of(upstream_model)
        if found.state == state:
            return found
        assert time.monotonic() < deadline, f"{upstream_model} stayed {found.state}, not {state}"
        time.sleep(0.02)


def chat_requests(fake: FakeUpstream, upstream_model: str) -> int:
    return sum(
        1
        for r in fake.received("/v1/chat/completions")
        if isinstance(r.body, dict) and r.body.get("model") == upstream_model
    )
