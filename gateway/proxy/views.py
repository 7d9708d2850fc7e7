"""/v1 views: thin async callers of the pipeline. Served without middleware (gateway/asgi.py)."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import pipeline, refusals
from .context import new_request_id
from .errors import GatewayError, error_response


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"


class UnknownEndpoint(GatewayError):
    status = 404
    code = "unknown_url"


def _refuse(request: HttpRequest, exc: GatewayError) -> HttpResponse:
    request_id = new_request_id()
    refusals.record(getattr(request, "scope", {}), exc, request_id)
    return error_response(exc, request_id)


def _method_not_allowed(request: HttpRequest, allowed: str) -> HttpResponse:
    exc = MethodNotAllowed(f"{request.method} is not allowed here; use {allowed}")
    response = _refuse(request, exc)
    response["allow"] = allowed
    return response


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    return await pipeline.handle(request, pipeline.CHAT)


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    return await pipeline.handle(request, pipeline.EMBEDDINGS)


async def models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, "GET")
    return await pipeline.list_models(request)


async def model(request: HttpRequest, model: str) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, "GET")
    return await pipeline.retrieve_model(request, model)


@csrf_exempt
async def unknown(request: HttpRequest, path: str = "") -> HttpResponse:
    exc = UnknownEndpoint(f"unknown endpoint: {request.method} {request.path}")
    return _refuse(request, exc)
