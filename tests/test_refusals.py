"""Who a refused request came from, and what of its key may be logged."""

import pytest

from gateway.proxy.refusals import shown_key_prefix
from infra.client_address import client_address


def _scope(peer: str = "192.0.2.10", **headers: str) -> dict:
    return {
        "client": (peer, 50000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards(settings):
    settings.GATEWAY_TRUSTED_PROXIES = []

    assert client_address(_scope(x_forwarded_for="203.0.113.7")) == "192.0.2.10"


def test_forwarded_address_is_ignored_from_an_untrusted_peer(settings):
    settings.GATEWAY_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_address(_scope(x_forwarded_for="203.0.113.7")) == "192.0.2.10"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # The client may write anything on the left; the nearest untrusted hop is what counts.
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, 10.1.2.3", "203.0.113.7"),
        ("10.9.9.9, 10.1.2.3", "10.9.9.9"),  # every hop trusted: the farthest one
        ("", "10.0.0.2"),
    ],
)
def test_trusted_proxy_chain_is_walked_from_the_right(settings, forwarded, client):
    settings.GATEWAY_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_address(_scope("10.0.0.2", x_forwarded_for=forwarded)) == client


def test_several_forwarded_headers_are_one_list(settings):
    settings.GATEWAY_TRUSTED_PROXIES = ["10.0.0.0/8"]
    scope = _scope("10.0.0.2")
    scope["headers"] += [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-for", b"10.1.1.1")]

    assert client_address(scope) == "203.0.113.7"


def test_ipv6_proxies_are_matched(settings):
    settings.GATEWAY_TRUSTED_PROXIES = ["::1/128"]

    assert client_address(_scope("::1", x_forwarded_for="2001:db8::5")) == "2001:db8::5"


def test_our_key_shows_only_its_visible_prefix():
    secret = "sk-gw-abcdef" + "x" * 37

    assert shown_key_prefix(_scope(authorization=f"Bearer {secret}")) == "sk-gw-abcdef"
    assert shown_key_prefix(_scope(api_key=secret)) == "sk-gw-abcdef"
    assert shown_key_prefix(_scope(x_api_key=secret)) == "sk-gw-abcdef"  # Anthropic's header


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-proj-someone-elses-openai-key"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"api_key": "sk-gw-"},
    ],
    ids=["no key", "foreign key", "not bearer", "bare prefix"],
)
def test_anything_else_shows_nothing(headers):
    assert shown_key_prefix(_scope(**headers)) == ""
