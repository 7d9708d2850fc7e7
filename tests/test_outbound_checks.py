"""System checks for the outbound settings (routing/checks.py)."""

import pytest
from django.core.management import call_command
from django.test import override_settings

from routing.checks import check_outbound_settings


def _ids(**changes) -> set[str]:
    with override_settings(**changes):
        return {issue.id for issue in check_outbound_settings(None)}


def test_the_defaults_pass():
    assert _ids() == set()


@pytest.mark.parametrize(
    ("setting", "value", "issue"),
    [
        ("GATEWAY_UPSTREAM_MAX_BODY_BYTES", 0, "routing.E001"),
        ("GATEWAY_UPSTREAM_MAX_EVENT_BYTES", -1, "routing.E001"),
        ("GATEWAY_REQUEST_DEADLINE_S", 0, "routing.E002"),
        ("GATEWAY_SHUTDOWN_TIMEOUT_S", -1, "routing.E003"),
    ],
)
def test_values_that_cannot_work_are_errors(setting, value, issue):
    assert issue in _ids(**{setting: value})


def test_an_event_limit_above_the_body_limit_is_a_warning():
    assert _ids(GATEWAY_UPSTREAM_MAX_EVENT_BYTES=10, GATEWAY_UPSTREAM_MAX_BODY_BYTES=5) == {
        "routing.W001"
    }


def test_the_check_is_registered():
    with override_settings(GATEWAY_REQUEST_DEADLINE_S=0), pytest.raises(Exception, match="E002"):
        call_command("check")
