"""Azure OpenAI: OpenAI's wire format, at a deployment's own URL, with Azure's key header.

    POST {api_base}/openai/deployments/{deployment}/chat/completions?api-version={version}
    POST {api_base}/openai/deployments/{deployment}/embeddings?api-version={version}
    api-key: <key>

`api_base` is the resource's endpoint (https://<resource>.openai.azure.com), the deployment is
the gateway deployment's upstream model id, and the key and API version come from the
provider's credential. Bodies, streams, usage and error bodies are OpenAI's (Azure adds content
filter results, passed through), so everything else is the OpenAI adapter's.
"""

from urllib.parse import quote, urlencode

from routing.selectors import Route

from .base import ProviderAdapter
from .openai import OpenAICompatibleAdapter


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    def _url(self, route: Route, path: str) -> str:
        base = super()._url(route, "")  # refuses a provider without api_base
        # Quoted: a deployment name is the admin's free text, and must stay one path segment.
        deployment = quote(route.upstream_model, safe="")
        query = urlencode({"api-version": route.credentials.get("api_version", "")})
        return f"{base}/openai/deployments/{deployment}{path}?{query}"

    def _auth_headers(self, route: Route) -> dict[str, str]:
        # Azure reads the key from api-key; an Authorization header would be taken for an Entra
        # ID token and refused.
        return {"api-key": route.api_key} if route.api_key else {}

    async def probe(self, route: Route) -> None:
        # Azure's models listing is per resource, not per deployment: a 1-token completion
        # (or embedding) checks the deployment itself.
        await ProviderAdapter.probe(self, route)
