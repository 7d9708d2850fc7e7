"""Each provider kind's health probe against its fake: the cheapest call that shows the
deployment answers (a models endpoint where the provider has one, else a 1-token completion),
and a ProviderError when it does not."""

import socket

import pytest

from infra import http
from routing.credentials import Credentials
from routing.providers import ProviderError, get_adapter
from routing.selectors import Route
from tests.fake_upstream import FakeUpstream
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.bedrock import ACCESS_KEY, SECRET_KEY
from tests.fakes.gemini import API_KEY as GEMINI_KEY

pytest_plugins = ("tests.fakes.fixtures",)

OPENAI_KEY = "sk-probe-secret"


@pytest.fixture(autouse=True)
async def _close_clients():
    yield
    await http.aclose()  # this test's event loop ends with it


def _route(kind: str, api_base: str, model: str, **fields) -> Route:
    return Route(
        deployment_id=1,
        model_name="m",
        upstream_model=model,
        mode=fields.pop("mode", "chat"),
        provider_id=1,
        provider_name=kind,
        provider_kind=kind,
        api_base=api_base,
        **fields,
    )


@pytest.fixture(scope="module")
def openai_fake():
    fake = FakeUpstream(api_key=OPENAI_KEY).start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("kind", ["openai", "openai_compatible"])
async def test_openai_kinds_ask_the_models_endpoint(openai_fake, kind):
    openai_fake.reset()
    key = Credentials(dict(api_key=OPENAI_KEY))
    await get_adapter(kind).probe(_route(kind, openai_fake.base_url, "gpt", credentials=key))
    assert [r.method for r in openai_fake.received("/v1/models")] == ["GET"]
    assert openai_fake.received("/v1/chat/completions") == []  # nothing billable

    wrong = Credentials(dict(api_key="sk-wrong"))
    with pytest.raises(ProviderError):
        await get_adapter(kind).probe(_route(kind, openai_fake.base_url, "gpt", credentials=wrong))


async def test_a_closed_port_fails_the_probe(closed_port_url):
    with pytest.raises(ProviderError) as failed:
        await get_adapter("openai_compatible").probe(
            _route("openai_compatible", closed_port_url, "gpt")
        )
    assert failed.value.kind == "upstream_unavailable"


@pytest.fixture
def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


async def test_azure_sends_a_one_token_completion_to_its_deployment(openai_fake):
    openai_fake.reset()
    route = _route(
        "azure_openai",
        openai_fake.azure_endpoint,
        "my-deployment",
        credentials=Credentials(dict(api_key=OPENAI_KEY, api_version="2024-10-21")),
    )
    openai_fake.api_key = None  # the fake checks Azure's api-key header only with a key set
    try:
        await get_adapter("azure_openai").probe(route)
    finally:
        openai_fake.api_key = OPENAI_KEY
    sent = openai_fake.requests[-1]
    assert sent.path == "/openai/deployments/my-deployment/chat/completions"
    assert sent.body["max_tokens"] == 1


async def test_an_embedding_deployment_is_probed_with_an_embedding(openai_fake):
    openai_fake.reset()
    route = _route(
        "azure_openai",
        openai_fake.azure_endpoint,
        "my-embedder",
        mode="embedding",
        credentials=Credentials(dict(api_key=OPENAI_KEY, api_version="2024-10-21")),
    )
    openai_fake.api_key = None
    try:
        await get_adapter("azure_openai").probe(route)
    finally:
        openai_fake.api_key = OPENAI_KEY
    assert openai_fake.requests[-1].path == "/openai/deployments/my-embedder/embeddings"


async def test_anthropic_asks_its_models_endpoint(fake_anthropic):
    route = _route(
        "anthropic",
        fake_anthropic.url,
        "claude-fake",
        credentials=Credentials(dict(api_key=ANTHROPIC_KEY)),
    )
    await get_adapter("anthropic").probe(route)
    assert [r.path for r in fake_anthropic.requests] == ["/v1/models"]
    bad = _route(
        "anthropic", fake_anthropic.url, "claude-fake", credentials=Credentials(dict(api_key="x"))
    )
    with pytest.raises(ProviderError):
        await get_adapter("anthropic").probe(bad)


async def test_gemini_asks_for_its_model(fake_gemini):
    route = _route(
        "gemini", fake_gemini.url, "gemini-fake", credentials=Credentials(dict(api_key=GEMINI_KEY))
    )
    await get_adapter("gemini").probe(route)
    assert [r.path for r in fake_gemini.requests] == ["/v1beta/models/gemini-fake"]
    fake_gemini.models = {"another-model"}
    with pytest.raises(ProviderError):
        await get_adapter("gemini").probe(route)


async def test_bedrock_sends_a_one_token_converse(fake_bedrock):
    route = _route(
        "bedrock",
        fake_bedrock.url,
        "anthropic.claude-3-haiku-20240307-v1:0",
        credentials=Credentials(
            dict(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        ),
        region="us-east-1",
    )
    await get_adapter("bedrock").probe(route)
    sent = fake_bedrock.requests[-1]
    assert sent.body["inferenceConfig"] == {"maxTokens": 1}
    fake_bedrock.fail(503)
    with pytest.raises(ProviderError):
        await get_adapter("bedrock").probe(route)


async def test_mock_is_always_up():
    assert await get_adapter("mock").probe(_route("mock", "", "anything")) is None
