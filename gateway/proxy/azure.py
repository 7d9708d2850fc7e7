"""Azure OpenAI-style paths, so that the official `AzureOpenAI` client works unmodified.

    POST /openai/deployments/{model}/chat/completions?api-version=...
    POST /openai/deployments/{model}/embeddings?api-version=...
    GET  /openai/models?api-version=...             the client's models.list()
    GET  /openai/models/{model}?api-version=...     the client's models.retrieve()

Azure speaks OpenAI's wire format (bodies, streams, the error shape), so only the URL differs
and these are thin views over the same pipeline as /v1: same auth (the key in `api-key`, or in
`Authorization: Bearer` as the client sends an Entra ID token), validation, policy, routing,
usage row (its `endpoint` is `chat.completions` or `embeddings`, as on /v1).

`{model}` is the gateway's public model name, the one /v1 takes in the body, not an upstream
deployment. It wins over the body's `model`: Azure's own service ignores that field, and the
client sends whatever the caller passed (with `azure_deployment=` set, usually another name),
so refusing a mismatch would break code that works against Azure.

`api-version` is required, as Azure requires it; it is part of the URL, so a missing or
malformed one is refused like an unknown path, before authentication, with a refusal log line
and no usage row. Any well-formed version is accepted and none is forwarded: the gateway
speaks to each upstream in that provider's own version.
"""

import re

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import pipeline
from .errors import BadRequest, GatewayError
from .views import _method_not_allowed, _refuse

API_VERSION = "api-version"
# Azure's versions are dates, some with a suffix: 2024-10-21, 2025-01-01-preview.
_API_VERSION_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}(?:-[a-z]+)?")


def api_version_error(request: HttpRequest) -> GatewayError | None:
    """Why the request's `api-version` is not acceptable, or None when it is."""
    values = request.GET.getlist(API_VERSION)
    if not values:
        return BadRequest(
            "missing the 'api-version' query parameter (e.g. ?api-version=2024-10-21)",
            param=API_VERSION,
            code="missing_api_version",
        )
    if len(values) > 1 or not _API_VERSION_FORMAT.fullmatch(values[0]):
        # The value is not repeated: it is the client's text, of any length.
        return BadRequest(
            "'api-version' must be given once, as a date-based version such as 2024-10-21 "
            "or 2025-01-01-preview",
            param=API_VERSION,
            code="invalid_api_version",
        )
    return None


def _refusal(request: HttpRequest, method: str) -> HttpResponse | None:
    if request.method != method:
        return _method_not_allowed(request, method)
    exc = api_version_error(request)
    return None if exc is None else _refuse(request, exc)


@csrf_exempt
async def chat_completions(request: HttpRequest, model: str) -> HttpResponse:
    refused = _refusal(request, "POST")
    if refused is not None:
        return refused
    return await pipeline.handle(request, pipeline.CHAT, path_model=model)


@csrf_exempt
async def embeddings(request: HttpRequest, model: str) -> HttpResponse:
    refused = _refusal(request, "POST")
    if refused is not None:
        return refused
    return await pipeline.handle(request, pipeline.EMBEDDINGS, path_model=model)


async def models(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request, "GET")
    if refused is not None:
        return refused
    return await pipeline.list_models(request)


async def model(request: HttpRequest, model: str) -> HttpResponse:
    refused = _refusal(request, "GET")
    if refused is not None:
        return refused
    return await pipeline.retrieve_model(request, model)
