"""The `mock` provider: a built-in fake model for demos and tests. It makes no network calls.

It answers in OpenAI's exact shapes (completion, SSE chunks with a final usage chunk,
embeddings) so that `make run` works offline and every gateway feature can be tried without a
vendor account. It is never a stand-in for a real adapter.
"""

import hashlib
import struct
import time
import uuid

import orjson

from routing.selectors import Route

from .base import ProviderAdapter, UpstreamResponse, UpstreamStream, Usage
from .usage import estimate_tokens

_EMBEDDING_DIMS = 8


def _reply_text(payload: dict) -> str:
    last_user = ""
    for message in payload.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            last_user = content if isinstance(content, str) else "(non-text content)"
    echoed = last_user[:200]
    return f"This is the gateway's mock model. You said: {echoed}"


def _usage(payload: dict, text: str) -> Usage:
    return Usage(
        input_tokens=estimate_tokens(payload.get("messages") or payload.get("input")),
        output_tokens=estimate_tokens(text),
    )


def _usage_dict(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class MockAdapter(ProviderAdapter):
    format = "openai"

    async def probe(self, route: Route) -> None:
        return None  # answers locally: always up

    async def chat(self, route: Route, payload: dict, headers: dict[str, str]) -> UpstreamResponse:
        text = _reply_text(payload)
        usage = _usage(payload, text)
        body = {
            "id": f"chatcmpl-mock-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": route.upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage_dict(usage),
        }
        return UpstreamResponse(body=orjson.dumps(body), usage=usage, upstream_ms=0.0)

    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        text = _reply_text(payload)
        usage = _usage(payload, text)
        base = {
            "id": f"chatcmpl-mock-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": route.upstream_model,
        }

        async def chunks():
            yield _sse(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
            words = text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                yield _sse(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                )
            yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            yield _sse({**base, "choices": [], "usage": _usage_dict(usage)})
            yield b"data: [DONE]\n\n"

        return UpstreamStream(chunks=chunks(), upstream_ms=0.0)

    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse:
        inputs = payload.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for index, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            # A deterministic unit-ish vector: same input, same embedding.
            values = struct.unpack(f"{_EMBEDDING_DIMS}b", digest[:_EMBEDDING_DIMS])
            data.append(
                {"object": "embedding", "index": index, "embedding": [v / 128 for v in values]}
            )
        usage = Usage(input_tokens=estimate_tokens(items))
        body = {
            "object": "list",
            "data": data,
            "model": route.upstream_model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        }
        return UpstreamResponse(body=orjson.dumps(body), usage=usage, upstream_ms=0.0)
