"""The operator's path: loadconfig a YAML file, createapikey, call with the SDK."""

from io import StringIO

from django.core.management import call_command

from tests.fake_upstream import REPLY
from tests.helpers_config import MINIMAL_CONFIG, MINIMAL_CONFIG_API_BASE

from .support import MESSAGES, PROVIDER_SECRET, wait_for_usage_records


def test_configured_by_loadconfig_and_keyed_by_createapikey_the_sdk_gets_completions(
    gateway, upstream, tmp_path, monkeypatch
):
    monkeypatch.setenv("EXAMPLE_API_KEY", PROVIDER_SECRET)
    config = tmp_path / "gateway.yaml"
    config.write_text(MINIMAL_CONFIG.replace(MINIMAL_CONFIG_API_BASE, upstream.base_url))
    loaded = StringIO()
    call_command("loadconfig", str(config), stdout=loaded)
    assert "created   provider openai-eu" in loaded.getvalue()
    issued = StringIO()
    call_command(
        "createapikey", "--team", "search", "--name", "ops", stdout=issued, stderr=StringIO()
    )
    key = issued.getvalue().strip()

    client = gateway.client(key=key)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-gateway-deployment"] == "openai-eu/gpt-4o-mini"
    assert raw.headers["x-gateway-provider"] == "openai-eu"
    assert raw.headers["x-gateway-cost-usd"]
    assert raw.headers["x-gateway-overhead-ms"]
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="small", messages=MESSAGES, stream=True)
    )
    assert streamed == REPLY

    # The upstream saw the provider credential from the environment, never the team's key.
    sent = upstream.received("/v1/chat/completions")
    assert {r.headers["authorization"] for r in sent} == {f"Bearer {PROVIDER_SECRET}"}
    assert {r.body["model"] for r in sent} == {"gpt-4o-mini"}
    records = wait_for_usage_records(2)
    assert {(r.team_slug, r.requested_model, r.status_code) for r in records} == {
        ("search", "small", 200)
    }
    assert sorted(r.stream for r in records) == [False, True]
