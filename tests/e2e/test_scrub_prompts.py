"""A policy's `scrub_prompts`: PII leaves for the provider only as placeholders, in every inbound
dialect, the count in `x-gateway-redactions` and the usage row; a failing detector refuses the
request rather than send the raw text."""

import json

import pytest

from billing.models import UsageContent, UsageRecord
from gateway.config import config_load
from infra import pii
from routing.selectors import routing_table_cache
from tenants.models import Team
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .privacy_support import (
    post_chat,
    post_embeddings,
    post_messages,
    set_team_policy,
    stored_content,
)
from .support import TEAM, assert_openai_error, wait_for_usage_records

pytest_plugins = ("tests.fakes.fixtures",)

EMAIL, PHONE, CARD = "jane.roe@example.com", "(415) 555-2671", "4111 1111 1111 1111"
PII_TEXTS = (EMAIL, PHONE, CARD, "EMP-123456")


def _sent(upstream, path="/v1/chat/completions") -> str:
    """Everything the provider received on `path`, as text."""
    return json.dumps([r.body for r in upstream.received(path)], ensure_ascii=False)


def _leaks(text: str) -> list[str]:
    return [found for found in PII_TEXTS if found in text]


def test_the_provider_receives_placeholders_and_the_count_is_a_header(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    messages = [
        {"role": "system", "content": f"You help {EMAIL}."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"My card is {CARD}, phone {PHONE}."},
                {"type": "text", "text": "Nothing personal here."},
            ],
        },
    ]
    response = post_chat(gateway, messages)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-redactions"] == "3"

    sent = upstream.received("/v1/chat/completions")[0].body["messages"]
    assert sent[0]["content"] == "You help [EMAIL]."
    assert sent[1]["content"][0]["text"] == "My card is [CARD], phone [PHONE]."
    assert sent[1]["content"][1]["text"] == "Nothing personal here."
    [record] = wait_for_usage_records(1)
    assert record.redactions == 3
    assert not UsageContent.objects.exists()  # scrubbing prompts stores nothing by itself


def test_a_prompt_without_pii_says_zero(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    response = post_chat(gateway, [{"role": "user", "content": "Say hello."}])
    assert response.headers["x-gateway-redactions"] == "0"
    assert upstream.received("/v1/chat/completions")[0].body["messages"][0]["content"] == (
        "Say hello."
    )


def test_streamed_responses_carry_the_count_too(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    messages = [{"role": "user", "content": f"Call {PHONE}"}]
    with (
        gateway.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "chat-fast", "stream": True, "messages": messages},
            headers=gateway.auth(),
        ) as response,
    ):
        assert response.headers["x-gateway-redactions"] == "1"
        assert "[DONE]" in "".join(response.iter_text())
    assert _leaks(_sent(upstream)) == []
    [record] = wait_for_usage_records(1)
    assert (record.stream, record.redactions) == (True, 1)


def test_anthropic_messages_are_scrubbed_system_included(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    response = post_messages(
        gateway,
        [{"role": "user", "content": [{"type": "text", "text": f"Card {CARD}"}]}],
        system=[{"type": "text", "text": f"Escalate to {EMAIL}"}],
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-redactions"] == "2"
    sent = _sent(upstream)  # translated for the OpenAI-style fake, after scrubbing
    assert _leaks(sent) == [] and "[CARD]" in sent and "Escalate to [EMAIL]" in sent


def test_azure_paths_are_scrubbed(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    with gateway.http() as http:
        response = http.post(
            "/openai/deployments/chat-fast/chat/completions?api-version=2024-10-21",
            json={"messages": [{"role": "user", "content": f"Mail {EMAIL}"}]},
            headers={"api-key": gateway.key},
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-redactions"] == "1"
    assert _leaks(_sent(upstream)) == []


def test_embeddings_input_is_scrubbed(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True)
    response = post_embeddings(gateway, [f"Mail {EMAIL}", "plain"])
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-redactions"] == "1"
    assert upstream.received("/v1/embeddings")[0].body["input"] == ["Mail [EMAIL]", "plain"]


def test_the_policys_own_patterns_are_scrubbed_too(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True, pii_patterns={"EMPLOYEE_ID": r"EMP-\d{6}"})
    response = post_chat(gateway, [{"role": "user", "content": "Badge EMP-123456 lost"}])
    assert response.headers["x-gateway-redactions"] == "1"
    assert upstream.received("/v1/chat/completions")[0].body["messages"][0]["content"] == (
        "Badge [EMPLOYEE_ID] lost"
    )


def test_scrubbed_prompts_are_what_redacted_and_full_modes_store(gateway, upstream):
    set_team_policy(gateway.team, scrub_prompts=True, privacy_mode="full")
    assert post_chat(gateway, [{"role": "user", "content": f"I am {EMAIL}"}]).status_code == 200
    wait_for_usage_records(1)
    [stored] = stored_content()
    assert json.loads(stored.prompt)["messages"][0]["content"] == "I am [EMAIL]"


def _broken_detector(*_args, **_kwargs):
    raise RuntimeError("detector bug")


def test_a_failing_detector_refuses_the_request_and_nothing_is_sent(
    gateway, upstream, monkeypatch, caplog
):
    # The gateway under test serves from a thread of this process: the patch reaches it.
    monkeypatch.setattr(pii, "_phone_spans", _broken_detector)
    set_team_policy(gateway.team, scrub_prompts=True, privacy_mode="redacted")
    response = post_chat(gateway, [{"role": "user", "content": f"Call {PHONE} or {EMAIL}"}])

    error = assert_openai_error(response, 500, "pii_scrub_failed")
    assert "not sent" in error["message"]
    assert upstream.received("/v1/chat/completions") == []
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.error_type) == (500, "pii_scrub_failed")
    assert not UsageContent.objects.exists()
    assert response.headers["x-request-id"] in caplog.text and "'phone'" in caplog.text
    assert _leaks(caplog.text) == []


def test_a_failing_detector_when_storing_stores_no_content(gateway, upstream, monkeypatch):
    # Redacted mode without prompt scrubbing: the request is served, its content not kept.
    monkeypatch.setattr(pii, "_email_spans", _broken_detector)
    set_team_policy(gateway.team, privacy_mode="redacted")
    response = post_chat(gateway, [{"role": "user", "content": f"Mail {EMAIL}"}])
    assert response.status_code == 200
    assert "x-gateway-redactions" not in response.headers
    [record] = wait_for_usage_records(1)
    assert record.status_code == 200
    assert not UsageContent.objects.exists()
    assert UsageRecord.objects.count() == 1


@pytest.mark.parametrize("scrub", [None, False])
def test_without_scrub_prompts_the_prompt_goes_as_sent(gateway, upstream, scrub):
    set_team_policy(gateway.team, scrub_prompts=scrub)
    response = post_chat(gateway, [{"role": "user", "content": f"Mail {EMAIL}"}])
    assert "x-gateway-redactions" not in response.headers
    assert EMAIL in _sent(upstream)


ANTHROPIC_CONFIG = """
providers:
  - {{name: claude, kind: anthropic, api_base: "{base}", api_key: "{key}"}}
models:
  - name: sonnet
    deployments: [{{provider: claude, model: claude-sonnet-fake}}]
"""


def test_an_anthropic_upstream_and_its_token_count_get_the_scrubbed_prompt(gateway, fake_anthropic):
    config_load(text=ANTHROPIC_CONFIG.format(base=fake_anthropic.url, key=ANTHROPIC_KEY))
    Team.objects.filter(slug=TEAM).update(allowed_models=["*"])
    routing_table_cache.invalidate()
    set_team_policy(gateway.team, scrub_prompts=True)
    body = {
        "model": "sonnet",
        "system": f"Escalate to {EMAIL}",
        "messages": [{"role": "user", "content": f"Card {CARD}"}],
    }
    headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01"}
    with gateway.http() as http:
        answered = http.post("/v1/messages", json={**body, "max_tokens": 20}, headers=headers)
        assert answered.status_code == 200, answered.text
        sent = fake_anthropic.last.body  # passed through: the Anthropic body itself
        counted = http.post("/v1/messages/count_tokens", json=body, headers=headers)
    assert answered.headers["x-gateway-redactions"] == "2"
    assert (sent["system"], sent["messages"][0]["content"]) == (
        "Escalate to [EMAIL]",
        "Card [CARD]",
    )
    assert counted.status_code == 200, counted.text
    assert fake_anthropic.last.path == "/v1/messages/count_tokens"
    assert _leaks(json.dumps(fake_anthropic.last.body)) == []
