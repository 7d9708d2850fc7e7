"""Values longer than their usage column still give exactly one row (truncated), never a lost
event: a model name past the limit, an upstream error code past the column's size."""

from .support import MESSAGES, assert_openai_error, only_usage_record


def _post(gateway, body: dict):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth())


def test_overlong_model_name_is_refused_and_still_logged_once(gateway):
    response = _post(gateway, {"model": "m" * 201, "messages": MESSAGES})
    assert_openai_error(response, 400)
    row = only_usage_record(response.headers["x-request-id"])
    assert row.status_code == 400
    assert row.requested_model == "m" * 200


def test_overlong_upstream_error_code_is_relayed_and_its_row_inserts(gateway, upstream):
    code = "c" * 65
    upstream.fail(400, message="no", type="invalid_request_error", param=None, code=code)
    response = _post(gateway, {"model": "chat-fast", "messages": MESSAGES})
    assert_openai_error(response, 400, code)
    row = only_usage_record(response.headers["x-request-id"])
    assert row.error_type == code[:64]
