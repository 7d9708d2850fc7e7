"""Rotation with a grace period, through the running gateway: the old secret keeps working
until the grace period ends, then gets 401; the new one works throughout.

A process that cached the old key before the rotation keeps that snapshot (with no expiry) for
at most GATEWAY_KEY_CACHE_TTL_S, the bound of every key change; with a grace period longer
than that, the old key stops exactly when the grace ends. The tests shorten the local TTL
(the server runs in this process, so it reads these settings) below the grace period.
"""

import time

import pytest

from tenants.services import api_key_rotate

from .support import MESSAGES, assert_openai_error

CHAT = {"model": "chat-fast", "messages": MESSAGES}
LOCAL_TTL_S = 0.5
GRACE_S = 2.0
SLACK_S = 2.0  # a loaded machine


@pytest.fixture(autouse=True)
def _short_local_cache(settings):
    settings.GATEWAY_KEY_CACHE_TTL_S = LOCAL_TTL_S


def _post(gateway, secret: str):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=CHAT, headers=gateway.auth(secret))


def _first_refusal(gateway, secret: str, within_s: float):
    deadline = time.monotonic() + within_s
    while True:
        response = _post(gateway, secret)
        if response.status_code != 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_old_key_works_during_the_grace_period_then_gets_401(gateway, upstream):
    old_secret = gateway.key
    assert _post(gateway, old_secret).status_code == 200  # cached now, in process and Redis
    started = time.time()
    rotated = api_key_rotate(api_key=gateway.api_key, grace_seconds=int(GRACE_S))
    grace_end = started + GRACE_S

    # Past the local cache's TTL, still inside the grace period: both work.
    time.sleep(LOCAL_TTL_S + 0.1)
    assert time.time() < grace_end
    assert _post(gateway, old_secret).status_code == 200
    assert _post(gateway, rotated.secret).status_code == 200

    time.sleep(max(0.0, grace_end - time.time()) + 0.1)
    error = assert_openai_error(_post(gateway, old_secret), 401, "expired_api_key")
    assert error["type"] == "authentication_error"
    assert _post(gateway, rotated.secret).status_code == 200


def test_rotation_without_grace_refuses_the_old_key_within_the_cache_bound(gateway, upstream):
    assert _post(gateway, gateway.key).status_code == 200
    rotated = api_key_rotate(api_key=gateway.api_key)
    started = time.monotonic()
    response = _first_refusal(gateway, gateway.key, LOCAL_TTL_S + SLACK_S)
    assert_openai_error(response, 401, "revoked_api_key")
    assert time.monotonic() - started <= LOCAL_TTL_S + SLACK_S
    assert _post(gateway, rotated.secret).status_code == 200
