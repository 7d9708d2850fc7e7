"""Amazon Bedrock Runtime: Converse, ConverseStream and InvokeModel (embeddings), SigV4-signed.

    POST {api_base}/model/{modelId}/converse          (JSON answer)
    POST {api_base}/model/{modelId}/converse-stream   (AWS event-stream framing)
    POST {api_base}/model/{modelId}/invoke            (Titan / Cohere embeddings)

`api_base` defaults to https://bedrock-runtime.{region}.amazonaws.com, the region being the
deployment's (else its provider's). The adapter speaks the Converse format (`format =
"bedrock"`, routing/formats/bedrock.py): every client's request reaches it translated.

Signing is botocore's SigV4Auth, over exactly the URL (the model id percent-encoded, as it goes
on the wire) and the body bytes that are sent. The credential is the provider's access key id
and secret (and session token), or, when the provider has none, the AWS credential chain of the
gateway's environment, resolved once and refreshed as botocore refreshes it.

Streams: Bedrock's binary event-stream frames are decoded with botocore's own parser and each
event is handed on re-framed as one server-sent event (`event: <type>` / `data: <JSON>`), so
the proxy's relay splits them like any other stream and the codec's decoder reads them. An
exception frame becomes the same kind of event named after the exception, which the codec
turns into a stream error.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import cache
from urllib.parse import quote

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials
from botocore.eventstream import EventStreamBuffer, ParserError
from botocore.session import get_session

from infra import http
from routing.formats import Malformed
from routing.formats.bedrock import (
    Unsupported,
    cohere_embed_request_from_openai,
    cohere_embed_response_to_openai,
    embed_request_from_openai,
    embed_responses_to_openai,
    error_from_response,
    usage_to_ir,
)
from routing.selectors import Route

from . import transport
from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream
from .usage import estimate_usage, usage_from_ir

# botocore's signer logs the canonical request at DEBUG, session token included: never.
logging.getLogger("botocore.auth").setLevel(logging.WARNING)

SERVICE = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
# Titan embeds one text per call: a list of inputs is that many calls, this many at a time
# (an account's InvokeModel quota is per second; a burst of hundreds would only be throttled).
EMBED_CONCURRENCY = 8


def default_api_base(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


@cache
def environment_credentials():
    """The AWS credential chain of the gateway's environment (environment variables, shared
    config, container or instance role), resolved once: botocore's refreshable credentials then
    renew themselves. None when the chain finds nothing."""
    return get_session().get_credentials()


async def _credentials(route: Route) -> AwsCredentials:
    parts = route.credentials
    key_id = parts.get("aws_access_key_id")
    if key_id:
        return AwsCredentials(
            key_id, parts.get("aws_secret_access_key", ""), parts.get("aws_session_token")
        )
    # Resolving the chain, or refreshing what it found (a role's credentials, every few
    # hours), may ask the instance metadata service: never on the event loop. Otherwise both
    # are in-memory reads, and a request pays no thread hop.
    if environment_credentials.cache_info().currsize:
        found = environment_credentials()
    else:
        found = await asyncio.to_thread(environment_credentials)
    if found is None:
        frozen = None
    elif getattr(found, "refresh_needed", lambda: False)():
        frozen = await asyncio.to_thread(found.get_frozen_credentials)
    else:
        frozen = found.get_frozen_credentials()
    if frozen is None or not frozen.access_key:
        raise ProviderError(
            f"{route.provider_name} has no credential and the gateway's environment provides "
            "no AWS credentials",
            retryable=True,
        )
    return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)


def _status_error(response: httpx.Response, body: bytes, upstream_ms: float) -> ProviderError:
    fault = error_from_response(response.status_code, response.headers, body)
    error_body = None
    if fault.kind == "client_error":
        # Relayed in the client's shape (Bedrock's own is {"message"}); the message is the
        # ValidationException's, the only one error_from_response relays.
        error_body = orjson.dumps(
            {"error": {"message": fault.message, "type": "invalid_request_error"}}
        )
    return ProviderError(
        fault.message,
        retryable=fault.retryable,
        kind=fault.kind,
        status=fault.status,
        body=error_body,
        upstream_ms=upstream_ms,
        headers=dict(fault.headers),
    )


def _refused(exc: Unsupported) -> ProviderError:
    """A parameter the model cannot honour: the caller's to fix, never retried elsewhere."""
    where = f"'{exc.param}': " if exc.param else ""
    body = {
        "error": {
            "message": f"unsupported parameter {where}{exc.message}",
            "type": "invalid_request_error",
            "param": exc.param,
            "code": "unsupported_parameter",
        }
    }
    return ProviderError(
        exc.message, retryable=False, kind="client_error", status=400, body=orjson.dumps(body)
    )


def _sse(kind: str, payload: bytes) -> bytes:
    # The payload is one JSON document (compact, no newline): one data line.
    return b"event: " + kind.encode() + b"\ndata: " + payload.replace(b"\n", b" ") + b"\n\n"


def _reframed(message) -> bytes:
    """One decoded event-stream message as one SSE event."""
    headers = message.headers
    kind = headers.get(":message-type")
    if kind == "event":
        return _sse(str(headers.get(":event-type") or "unknown"), message.payload or b"{}")
    if kind == "exception":
        name = str(headers.get(":exception-type") or "internalServerException")
        return _sse(name, message.payload or b"{}")
    # An `error` message: code and message in headers, no payload.
    code = str(headers.get(":error-code") or "")
    name = code if code.endswith("Exception") else "internalServerException"
    text = str(headers.get(":error-message") or "the upstream stream failed")
    return _sse(name, orjson.dumps({"message": text}))


class _Frames:
    """Raw event-stream bytes in, SSE bytes out (botocore's parser does the framing: lengths,
    CRCs, headers)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> bytes:
        self._buffer.add_data(chunk)
        try:
            return b"".join(_reframed(message) for message in self._buffer)
        except ParserError as exc:
            raise Malformed(f"not AWS event-stream framing ({type(exc).__name__})") from None


def _exception_first(sse: bytes) -> str | None:
    """The exception's type (ThrottlingException) when a stream's first event is one."""
    if not sse.startswith(b"event: "):
        return None
    name = sse[7 : sse.find(b"\n")].decode("utf-8", "replace")
    return name[:1].upper() + name[1:] if name.endswith("Exception") else None


async def _reframe(frames: _Frames, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        out = frames.feed(chunk)
        if out:
            yield out


class BedrockAdapter(ProviderAdapter):
    format = "bedrock"

    def _url(self, route: Route, model: str, operation: str) -> str:
        base = (route.api_base or default_api_base(route.region)).rstrip("/")
        # The model id is one path segment whatever it holds (an inference profile ARN has a
        # "/"). Signed and sent in the form the transport sends ("%3A" goes out as ":"):
        # AWS checks the signature against the path it received.
        return http.wire_url(f"{base}/model/{quote(model, safe='')}/{operation}")

    async def _signed(
        self, route: Route, url: str, body: bytes, headers: dict[str, str], accept: str
    ) -> dict[str, str]:
        if not route.region:  # the routing table leaves such deployments out; defensive
            raise ProviderError(f"{route.provider_name} has no region", retryable=True)
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={"content-type": "application/json", "accept": accept},
        )
        SigV4Auth(await _credentials(route), SERVICE, route.region).add_auth(request)
        # Forwarded headers (x-request-id, ...) travel unsigned, which AWS allows.
        return {**headers, **dict(request.headers.items())}

    async def _post(
        self,
        route: Route,
        model: str,
        operation: str,
        payload: dict,
        headers: dict[str, str],
        response_headers: dict[str, str] | None = None,
    ) -> tuple[bytes, float]:
        url = self._url(route, model, operation)
        body = orjson.dumps(payload)
        signed = await self._signed(route, url, body, headers, "application/json")
        return await transport.complete(
            route, url, payload, signed, _status_error, body, response_headers
        )

    def probe_payload(self, route: Route) -> dict:
        # Converse: Bedrock's runtime has no models endpoint, so a 1-token completion.
        return {
            "messages": [{"role": "user", "content": [{"text": "ping"}]}],
            "inferenceConfig": {"maxTokens": 1},
        }

    async def chat(self, route: Route, payload: dict, headers: dict[str, str]) -> UpstreamResponse:
        body, upstream_ms = await self._post(
            route, route.upstream_model, "converse", payload, headers
        )
        data = _json(route, body)
        usage = data.get("usage")
        try:
            found = usage_from_ir(usage_to_ir(usage)) if isinstance(usage, dict) else None
        except TypeError:  # a count that is not a number: estimated instead
            found = None
        return UpstreamResponse(
            body=body, usage=found or estimate_usage(payload, len(body)), upstream_ms=upstream_ms
        )

    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        url = self._url(route, route.upstream_model, "converse-stream")
        body = orjson.dumps(payload)
        signed = await self._signed(route, url, body, headers, EVENT_STREAM)
        raw = await transport.open_stream(
            route, url, payload, signed, _status_error, body, stream_type=EVENT_STREAM
        )
        frames = _Frames()
        try:
            first = frames.feed(raw.first)
        except Malformed as exc:
            await raw.aclose()
            raise ProviderError(
                f"{route.provider_name} answered a streamed request with a body that is not "
                "an AWS event stream",
                retryable=True,
                upstream_ms=raw.upstream_ms,
            ) from exc
        failed = _exception_first(first)
        if failed is not None:
            # Nothing has reached the client: a stream that fails at once (throttled, model
            # not ready) falls back like a failed call.
            await raw.aclose()
            fault = error_from_response(0, {"x-amzn-errortype": failed}, None)
            raise ProviderError(
                fault.message,
                retryable=fault.retryable,
                kind=fault.kind if fault.kind != "client_error" else "upstream_error",
                status=fault.status if fault.kind != "client_error" else 502,
                upstream_ms=raw.upstream_ms,
            )
        raw.chunks = _reframe(frames, raw.chunks)
        raw.first = first
        return raw

    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        model = route.upstream_model
        encoding = payload.get("encoding_format")
        try:
            if model.startswith("cohere."):
                request, _ = cohere_embed_request_from_openai(payload, model=model)
                bodies = [request]
            else:
                bodies, _ = embed_request_from_openai(payload, model=model)
        except Unsupported as exc:
            raise _refused(exc) from None
        limit = asyncio.Semaphore(EMBED_CONCURRENCY)
        seen: dict[str, str] = {}  # the last answer's headers (Cohere: the only answer)

        async def one(body: dict) -> tuple[bytes, float]:
            async with limit:
                return await self._post(route, model, "invoke", body, headers, seen)

        answers = await asyncio.gather(*(one(b) for b in bodies))
        upstream_ms = max(ms for _, ms in answers)
        try:
            if model.startswith("cohere."):
                # Cohere's body has no count: Bedrock sends it in a header.
                count = seen.get("x-amzn-bedrock-input-token-count", "")
                answer, usage = cohere_embed_response_to_openai(
                    _json(route, answers[0][0]),
                    model=model,
                    input_tokens=int(count) if count.isdigit() and len(count) < 10 else 0,
                    encoding_format=encoding,
                )
            else:
                answer, usage = embed_responses_to_openai(
                    [_json(route, body) for body, _ in answers],
                    model=model,
                    encoding_format=encoding,
                )
        except Malformed as exc:
            raise ProviderError(
                f"{route.provider_name} returned an answer that is not an embedding",
                retryable=True,
                upstream_ms=upstream_ms,
            ) from exc
        found = usage_from_ir(usage)
        if not found.input_tokens:
            found = estimate_usage(payload, 0)
        return UpstreamResponse(body=orjson.dumps(answer), usage=found, upstream_ms=upstream_ms)


def _json(route: Route, body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise transport.not_json(route) from exc
    if not isinstance(data, dict):
        raise transport.not_json(route)
    return data
