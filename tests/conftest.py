"""Shared fixtures. Tests run against real Postgres and Redis (see `make test`)."""

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir

from compliance.snapshot import compliance_table_cache
from gateway.proxy import retries
from gateway.proxy.auth import clear_process_state
from infra.state import get_state
from policies import admission
from policies.snapshot import policy_table_cache
from routing import health
from routing.selectors import routing_table_cache
from tenants import keycache
from tenants.services import api_key_issue

from .factories import MembershipFactory, TeamFactory, UserFactory
from .helpers_net import RedisServer

# Property-based tests (tests/test_fuzz_*.py). "ci", the default, keeps the whole fuzz suite
# within a minute of `make test` on two cores and draws the same examples every run, so a
# failure reproduces and nothing is written into the checkout (no example database).
# HYPOTHESIS_PROFILE=long is a campaign: many more examples, fresh ones each run (a failure
# prints the seed and the blob that replay it).
hypothesis_settings.register_profile(
    "ci",
    max_examples=25,
    deadline=2000,  # ms per example: generous for a loaded machine, yet catches a hang
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # Explaining a failure re-runs it hundreds of times; the shrunk example is what matters.
    phases=[phase for phase in Phase if phase is not Phase.explain],
)
hypothesis_settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Hypothesis caches (unicode tables, constants) outside the checkout too.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "llm-gateway-hypothesis")


@pytest.fixture(scope="session")
def _spool_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(autouse=True)
def _fresh_state(_spool_dir, settings):
    """Every test starts with empty shared and process-local caches, and spools usage events
    (if it comes to that) outside the checkout."""
    settings.GATEWAY_SPOOL_DIR = str(_spool_dir)
    if settings.REDIS_URL:
        get_state().sync_client.flushdb()
    clear_process_state()
    admission.clear_process_state()
    retries.budget.reset()
    health.forget_cache()
    keycache.pending.clear()
    routing_table_cache.invalidate()
    policy_table_cache.invalidate()
    compliance_table_cache.invalidate()
    yield
    clear_process_state()
    admission.clear_process_state()
    retries.budget.reset()
    health.forget_cache()
    keycache.pending.clear()
    routing_table_cache.invalidate()
    policy_table_cache.invalidate()
    compliance_table_cache.invalidate()


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own on a free port, to stop and restart at will."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def team(db):
    return TeamFactory(slug="search", allowed_models=["*"])


@pytest.fixture
def other_team(db):
    return TeamFactory(slug="ads", allowed_models=["*"])


@pytest.fixture
def lead(team):
    return MembershipFactory(team=team, role="lead", user=UserFactory(username="lead")).user


@pytest.fixture
def member(team):
    return MembershipFactory(team=team, role="member", user=UserFactory(username="member")).user


@pytest.fixture
def outsider(other_team):
    return MembershipFactory(team=other_team, user=UserFactory(username="outsider")).user


@pytest.fixture
def issue_key():
    """Issue a key through the service; returns the secret (the only time it exists)."""

    def _issue(team, **kwargs) -> str:
        return api_key_issue(team=team, name=kwargs.pop("name", "test"), **kwargs).secret

    return _issue
