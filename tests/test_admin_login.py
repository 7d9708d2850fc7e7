"""The admin login is throttled per client IP and per username, in the shared cache (Redis in
the test run), and answers 429 with a page that says how long to wait."""

import pytest
from django.test import Client, override_settings

from .factories import UserFactory
from .helpers_proc import free_port

LOGIN = "/admin/login/"
PASSWORD = "correct horse battery staple"
WRONG = "not the password"
# A day-long window: a fixed-window counter that rolled over mid-test would let the sixth
# attempt through. The shipped default (5/m) is the same mechanism with a shorter window.
RATE = "5/d"


@pytest.fixture(autouse=True)
def _rate(settings):
    settings.GATEWAY_ADMIN_LOGIN_RATE = RATE


@pytest.fixture
def staff(db):
    user = UserFactory(username="operator", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def _attempt(client: Client, username: str, password: str = WRONG, ip: str = "10.0.0.1"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )


def test_sixth_attempt_from_one_address_is_refused_with_429_and_retry_after(client, staff):
    for _ in range(5):
        response = _attempt(client, "operator")
        assert response.status_code == 200  # the login form again, with its error
        assert "Please enter the correct username and password" in response.content.decode()
    response = _attempt(client, "operator")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many login attempts" in page
    assert f"Wait {response['Retry-After']} seconds" in page
    assert 0 < int(response["Retry-After"]) <= 24 * 3600


def test_throttled_address_is_refused_even_with_the_right_password(client, staff):
    for n in range(5):
        _attempt(client, f"guess-{n}")
    response = _attempt(client, "operator", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_username_from_many_addresses_is_throttled(client, staff):
    for n in range(5):
        assert _attempt(client, "operator", ip=f"10.0.1.{n}").status_code == 200
    # Usernames are case-folded: "Operator" is the same account to a guesser.
    assert _attempt(client, "Operator", ip="10.0.1.99").status_code == 429


def test_other_users_and_addresses_are_not_throttled(client, staff):
    for _ in range(6):
        _attempt(client, "operator", ip="10.0.2.1")
    response = _attempt(client, "someone-else", PASSWORD, ip="10.0.2.2")
    assert response.status_code == 200
    response = _attempt(client, "operator", PASSWORD, ip="10.0.2.3")
    assert response.status_code == 429  # the username is still throttled, from anywhere


def test_login_within_the_limit_works(client, staff):
    for _ in range(4):
        _attempt(client, "operator")
    response = _attempt(client, "operator", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_showing_the_login_form_is_not_counted(client, staff):
    for _ in range(10):
        assert client.get(LOGIN).status_code == 200
    assert _attempt(client, "operator", PASSWORD).status_code == 302


def test_unreachable_rate_limit_store_refuses_login_with_503(client, staff):
    # Counting in a Redis that is down must not mean "unlimited attempts".
    closed = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with override_settings(CACHES=closed):
        response = _attempt(client, "operator", PASSWORD)
    assert response.status_code == 503
    assert "cannot reach its shared store (Redis)" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_production_mode_cookies_are_secure_and_http_only(client, staff):
    # The test run is production mode (DATABASE_URL is set): a browser would only ever send
    # these cookies back over HTTPS, and never to scripts.
    response = _attempt(client, "operator", PASSWORD)
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert response.cookies["csrftoken"]["secure"] is True


@pytest.mark.django_db(transaction=True)
async def test_behind_a_trusted_proxy_each_client_is_counted_apart(async_client, staff, settings):
    # The ASGI request's peer plays the load balancer; its X-Forwarded-For names the clients.
    settings.GATEWAY_TRUSTED_PROXIES = ["127.0.0.1"]

    async def attempt(client_ip: str):
        return await async_client.post(
            LOGIN,
            {"username": f"someone-{client_ip}", "password": WRONG},
            headers={"x-forwarded-for": client_ip},
        )

    for _ in range(5):
        assert (await attempt("203.0.113.1")).status_code == 200
    assert (await attempt("203.0.113.1")).status_code == 429
    assert (await attempt("203.0.113.2")).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_forwarded_addresses_from_an_untrusted_peer_do_not_split_the_count(
    async_client, staff
):
    for n in range(5):
        response = await async_client.post(
            LOGIN,
            {"username": f"someone-{n}", "password": WRONG},
            headers={"x-forwarded-for": f"198.51.100.{n}"},
        )
        assert response.status_code == 200
    response = await async_client.post(
        LOGIN, {"username": "another", "password": WRONG}, headers={"x-forwarded-for": "192.0.2.9"}
    )
    assert response.status_code == 429
