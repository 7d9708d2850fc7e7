"""Cost allocation tags (gateway/proxy/tags.py): from the x-gateway-tags header or the body's
metadata, validated against the organization's allowed keys, stored on the usage record."""

import pytest

from policies.snapshot import policy_table_cache
from tenants.models import Organization

from .support import MESSAGES, assert_openai_error, wait_for_usage_records


def _chat(gw, headers=None, **body):
    with gw.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": "chat-fast", "messages": MESSAGES, **body},
            headers={**gw.auth(), **(headers or {})},
        )


def test_header_tags_are_stored_with_the_usage(gateway, upstream):
    response = _chat(gateway, {"x-gateway-tags": "use_case=search, environment=prod"})
    assert response.status_code == 200, response.text
    [record] = wait_for_usage_records(1)
    assert record.tags == {"use_case": "search", "environment": "prod"}


def test_metadata_tags_count_and_other_metadata_is_left_alone(gateway, upstream):
    metadata = {"feature": "autocomplete", "customer_ref": "anything the provider wants"}
    response = _chat(gateway, metadata=metadata)
    assert response.status_code == 200, response.text
    [record] = wait_for_usage_records(1)
    assert record.tags == {"feature": "autocomplete"}
    [sent] = upstream.received("/v1/chat/completions")
    assert sent.body["metadata"] == metadata  # forwarded as the client sent it


def test_the_header_wins_over_metadata(gateway, upstream):
    response = _chat(gateway, {"x-gateway-tags": "feature=a"}, metadata={"feature": "b"})
    assert response.status_code == 200
    [record] = wait_for_usage_records(1)
    assert record.tags == {"feature": "a"}


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("team=other", "tag 'team' is not allowed here (allowed: environment, feature, use_case)"),
        ("use_case", "key=value pairs"),
        ("use_case=has space", "must be 1-64"),
        ("Use_Case=x", "lower-case"),
        (",".join(f"use_case=v{i}" if i == 0 else f"k{i}=v" for i in range(12)), "at most 10"),
    ],
    ids=["unknown key", "no value", "bad value", "bad key", "too many"],
)
def test_bad_tags_are_a_400_naming_them(gateway, upstream, header, says):
    response = _chat(gateway, {"x-gateway-tags": header})
    error = assert_openai_error(response, 400, "invalid_tags")
    assert says in error["message"]
    assert error["param"] == "x-gateway-tags"
    assert upstream.received("/v1/chat/completions") == []


def test_the_organization_chooses_its_tag_keys(gateway, upstream):
    Organization.objects.filter(pk=gateway.team.organization_id).update(
        allowed_tag_keys=["cost_center"]
    )
    policy_table_cache.invalidate()
    assert _chat(gateway, {"x-gateway-tags": "cost_center=cc-42"}).status_code == 200
    refused = _chat(gateway, {"x-gateway-tags": "use_case=search"})
    assert_openai_error(refused, 400, "invalid_tags")
    records = wait_for_usage_records(2)
    assert sorted(r.status_code for r in records) == [200, 400]


def test_no_tags_is_the_common_case(gateway, upstream):
    assert _chat(gateway).status_code == 200
    [record] = wait_for_usage_records(1)
    assert record.tags == {}
