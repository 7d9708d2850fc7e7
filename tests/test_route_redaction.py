"""Route.redact: a route's credential never leaves in relayed upstream text, in any spelling
JSON allows; placeholder "credentials" of local servers are left alone."""

from routing.credentials import Credentials
from routing.selectors import Route, _secret_forms


def _route(api_key: str) -> Route:
    return Route(
        deployment_id=1,
        model_name="m",
        upstream_model="u",
        mode="chat",
        provider_id=1,
        provider_name="p",
        provider_kind="openai",
        api_base="",
        credentials=Credentials({"api_key": api_key}),
        secret_forms=_secret_forms(api_key),
    )


def test_the_credential_is_replaced_wherever_it_appears():
    route = _route("sk-abc123def456")
    assert route.redact(b"bad key sk-abc123def456 and sk-abc123def456") == (
        b"bad key [REDACTED] and [REDACTED]"
    )


def test_json_escaped_spellings_are_replaced_too():
    route = _route('sk-with/slash"quote')
    assert route.redact(b'{"m": "sk-with/slash\\"quote"}') == b'{"m": "[REDACTED]"}'
    assert route.redact(b'{"m": "sk-with\\/slash\\"quote"}') == b'{"m": "[REDACTED]"}'


def test_short_placeholder_keys_are_not_treated_as_secrets():
    route = _route("EMPTY")
    assert route.redact(b"EMPTY is a word") == b"EMPTY is a word"


def test_text_is_redacted_like_bytes():
    assert _route("sk-abc123def456").redact_text("x sk-abc123def456") == "x [REDACTED]"
