"""Guessing keys: failures are counted per client address, and too many in a minute get 429."""

import pytest

from gateway.proxy import throttle
from infra.state import get_state
from tenants.keycache import snapshot_name
from tenants.keys import hash_secret

from .support import assert_openai_error

LIMIT = 3


@pytest.fixture
def limit(settings):
    settings.GATEWAY_AUTH_FAILURES_PER_MINUTE = LIMIT


def _models(gateway, key: str | None, **headers):
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    with gateway.http() as http:
        return http.get("/v1/models", headers=headers)


def _guess(n: int) -> str:
    return f"sk-gw-guess{n:03d}" + "g" * 35


def _counters() -> dict[bytes, bytes]:
    client = get_state().sync_client
    return {name: client.get(name) for name in client.keys(throttle.COUNTER_PREFIX + "*")}


def test_address_over_the_limit_gets_429_with_retry_after_in_openai_shape(gateway, limit):
    for n in range(LIMIT):
        assert_openai_error(_models(gateway, _guess(n)), 401, "invalid_api_key")

    response = _models(gateway, _guess(LIMIT))

    error = assert_openai_error(response, 429, "too_many_failed_authentications")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    # The address is refused even with a good key: it is the address that is throttled.
    assert_openai_error(_models(gateway, gateway.key), 429, "too_many_failed_authentications")


def test_the_count_is_shared_so_another_process_refuses_before_any_lookup(gateway, limit):
    for n in range(LIMIT):
        assert _models(gateway, _guess(n)).status_code == 401
    # Another web process has none of this process's memory; the shared count is all it has.
    throttle.blocked.clear()
    unknown = _guess(99)

    assert_openai_error(_models(gateway, unknown), 429, "too_many_failed_authentications")
    # Refused before the database was asked: a lookup would have cached its answer.
    assert get_state().sync_client.get(snapshot_name(hash_secret(unknown))) is None


def test_missing_keys_count_as_failures(gateway, limit):
    for _ in range(LIMIT):
        assert _models(gateway, None).status_code == 401
    assert_openai_error(_models(gateway, None), 429, "too_many_failed_authentications")


def test_successful_requests_do_not_touch_the_failure_count(gateway, limit):
    for _ in range(LIMIT + 2):
        assert _models(gateway, gateway.key).status_code == 200
    assert _counters() == {}
    assert _models(gateway, _guess(1)).status_code == 401
    assert list(_counters().values()) == [b"1"]


def test_throttling_can_be_turned_off(gateway, settings):
    settings.GATEWAY_AUTH_FAILURES_PER_MINUTE = 0
    for n in range(LIMIT + 2):
        assert _models(gateway, _guess(n)).status_code == 401
    assert _counters() == {}


def test_clients_behind_a_trusted_proxy_are_counted_apart(gateway, limit, settings):
    # The test client connects from 127.0.0.1, here playing the load balancer.
    settings.GATEWAY_TRUSTED_PROXIES = ["127.0.0.1"]
    attacker = {"x-forwarded-for": "203.0.113.66"}
    for n in range(LIMIT + 1):
        _models(gateway, _guess(n), **attacker)
    assert_openai_error(_models(gateway, gateway.key, **attacker), 429)

    neighbour = {"x-forwarded-for": "203.0.113.67"}
    assert _models(gateway, gateway.key, **neighbour).status_code == 200


def test_forwarded_address_from_an_untrusted_peer_is_ignored(gateway, limit):
    # Without GATEWAY_TRUSTED_PROXIES a client cannot dodge the count by inventing addresses.
    for n in range(LIMIT + 1):
        _models(gateway, _guess(n), **{"x-forwarded-for": f"198.51.100.{n}"})
    assert_openai_error(_models(gateway, gateway.key), 429, "too_many_failed_authentications")
