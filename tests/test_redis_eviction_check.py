"""The Redis eviction check reads the real server's maxmemory-policy (CONFIG GET): a policy that
may evict the usage stream or the task queues is a warning at start-up. The shared test Redis is
only read; other policies run on a throwaway redis-server of the test's own."""

import shutil
import subprocess

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from gateway.checks import check_redis_eviction

from .helpers_proc import free_port, wait_for


@pytest.fixture
def own_redis(tmp_path):
    """Start a redis-server with the given policy on a free port; returns its URL."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    servers = []

    def _start(*args: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers.append(proc)
        url = f"redis://127.0.0.1:{port}/0"

        def up() -> bool:
            try:
                return redis.Redis.from_url(url).ping()
            except redis.ConnectionError:
                return False

        wait_for(up, timeout=10, what="the throwaway redis-server")
        return url

    yield _start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=10)


def _ids(url: str, broker: str = "memory://") -> list[str]:
    with override_settings(REDIS_URL=url, CELERY_BROKER_URL=broker):
        return [issue.id for issue in check_redis_eviction(None)]


def test_shared_test_redis_is_judged_by_its_actual_policy():
    config = redis.Redis.from_url(settings.REDIS_URL).config_get("maxmemory*")
    safe = config["maxmemory"] == "0" or config["maxmemory-policy"] == "noeviction"
    assert (_ids(settings.REDIS_URL) == []) is safe


def test_allkeys_policy_with_a_memory_limit_is_w010_naming_the_setting(own_redis):
    url = own_redis("--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru")
    with override_settings(REDIS_URL=url, CELERY_BROKER_URL=url):
        [warning] = check_redis_eviction(None)
    assert warning.id == "gateway.W010"
    assert "REDIS_URL" in warning.msg and "allkeys-lru" in warning.msg
    assert "usage stream" in warning.msg
    assert "noeviction" in warning.hint
    assert url not in warning.msg  # a URL may carry a password


def test_volatile_policy_is_the_milder_w011(own_redis):
    url = own_redis("--maxmemory", "10mb", "--maxmemory-policy", "volatile-lru")
    assert _ids(url) == ["gateway.W011"]


def test_noeviction_with_a_memory_limit_passes(own_redis):
    url = own_redis("--maxmemory", "10mb", "--maxmemory-policy", "noeviction")
    assert _ids(url) == []


def test_no_memory_limit_passes_whatever_the_policy(own_redis):
    url = own_redis("--maxmemory", "0", "--maxmemory-policy", "allkeys-lru")
    assert _ids(url) == []


def test_a_separate_broker_redis_is_checked_too(own_redis):
    safe = own_redis("--maxmemory-policy", "noeviction")
    broker = own_redis("--maxmemory", "10mb", "--maxmemory-policy", "allkeys-random")
    with override_settings(REDIS_URL=safe, CELERY_BROKER_URL=broker):
        [warning] = check_redis_eviction(None)
    assert "CELERY_BROKER_URL" in warning.msg


def test_unreachable_redis_is_skipped_quietly():
    # Readiness and the requests themselves report an unreachable Redis; this check only judges
    # a configuration it can read.
    assert _ids(f"redis://127.0.0.1:{free_port()}/0") == []


def test_embedded_mode_has_nothing_to_check():
    assert _ids("", broker="memory://") == []
