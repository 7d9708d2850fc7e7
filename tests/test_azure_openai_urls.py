"""Where the azure_openai adapter sends a request: the deployment's URL under the endpoint (a
path prefix kept), the deployment name one quoted path segment, the API version a query
parameter, the key in api-key and nowhere else."""

from routing.credentials import Credentials
from routing.providers import get_adapter
from routing.selectors import Route

CREDENTIALS = Credentials({"api_key": "azure-key-0123456789", "api_version": "2024-10-21"})


def _route(api_base: str, deployment: str) -> Route:
    return Route(
        deployment_id=1,
        model_name="m",
        upstream_model=deployment,
        mode="chat",
        provider_id=1,
        provider_name="azure",
        provider_kind="azure_openai",
        api_base=api_base,
        credentials=CREDENTIALS,
    )


def test_chat_and_embeddings_go_to_the_deployments_url_with_the_api_version():
    adapter = get_adapter("azure_openai")
    route = _route("https://res.openai.azure.com/", "gpt-4o-mini")
    assert adapter._url(route, "/chat/completions") == (
        "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
        "?api-version=2024-10-21"
    )
    assert adapter._url(route, "/embeddings") == (
        "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/embeddings"
        "?api-version=2024-10-21"
    )


def test_a_path_prefix_is_kept_and_an_odd_deployment_name_stays_one_segment():
    adapter = get_adapter("azure_openai")
    route = _route("https://apim.example.com/team-a", "my model/v2?x=1")
    assert adapter._url(route, "/chat/completions") == (
        "https://apim.example.com/team-a/openai/deployments/my%20model%2Fv2%3Fx%3D1"
        "/chat/completions?api-version=2024-10-21"
    )


def test_the_key_goes_in_api_key_only():
    adapter = get_adapter("azure_openai")
    assert adapter._auth_headers(_route("https://r", "d")) == {"api-key": "azure-key-0123456789"}
    assert get_adapter("openai")._auth_headers(_route("https://r", "d")) == {
        "authorization": "Bearer azure-key-0123456789"
    }
