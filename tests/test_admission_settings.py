"""Admission's settings are checked at start-up: a reservation TTL below the request deadline
would drop live reservations (overspend); fail-open is allowed but never silent."""

from django.test import override_settings

from gateway.checks import check_admission

SOUND = {
    "GATEWAY_BUDGET_RESERVATION_TTL_S": 900,
    "GATEWAY_REQUEST_DEADLINE_S": 600.0,
    "GATEWAY_BUDGET_FAIL_OPEN": False,
    "GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS": 16,
    "GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS": 4096,
}


def _ids(**changes) -> list[str]:
    with override_settings(**{**SOUND, **changes}):
        return [issue.id for issue in check_admission(None)]


def test_defaults_pass():
    assert _ids() == []


def test_a_reservation_ttl_not_above_the_request_deadline_is_e016():
    assert _ids(GATEWAY_BUDGET_RESERVATION_TTL_S=600) == ["gateway.E016"]
    assert _ids(GATEWAY_BUDGET_RESERVATION_TTL_S=300, GATEWAY_REQUEST_DEADLINE_S=200.0) == []


def test_output_token_settings_must_be_positive():
    assert _ids(GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS=0) == ["gateway.E017"]
    assert _ids(GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS=0) == ["gateway.E017"]


def test_fail_open_is_a_warning():
    with override_settings(**{**SOUND, "GATEWAY_BUDGET_FAIL_OPEN": True}):
        [warning] = check_admission(None)
    assert warning.id == "gateway.W003"
    assert "without checking hard budgets" in warning.msg
