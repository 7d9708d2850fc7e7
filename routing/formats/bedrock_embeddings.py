"""Embeddings through Bedrock: Amazon Titan Text Embeddings v2 (InvokeModel), from and to
OpenAI's embeddings format.

Titan takes one `inputText` per call and answers `{embedding, inputTextTokenCount}`, so a list
of inputs is one call per input (the adapter makes them, in order).
"""

import array
import base64
import sys

from .errors import Malformed, Unsupported
from .ir import Usage

# Titan v2's output sizes (its `dimensions`); 1024 when none is asked for.
TITAN_DIMENSIONS = (256, 512, 1024)


def embed_request_from_openai(body: dict, *, model: str) -> tuple[list[dict], list[str]]:
    """One InvokeModel body per input (Titan embeds one `inputText` per call), and the dropped
    parameters. The adapter sends them in order and hands the answers to
    embed_responses_to_openai. Token arrays are refused: Titan takes text only."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise Unsupported("input", "this model embeds text only: a string or a list of strings")
    for i, text in enumerate(inputs):
        if not text:
            raise Unsupported(f"input[{i}]", "an input to embed may not be empty")
    base: dict = {"normalize": True}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if dimensions not in TITAN_DIMENSIONS:
            raise Unsupported("dimensions", "this model embeds in 256, 512 or 1024 dimensions")
        base["dimensions"] = dimensions
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise Unsupported("encoding_format", "encoding_format must be float or base64")
    dropped = ["user"] if body.get("user") is not None else []
    return [{"inputText": text, **base} for text in inputs], dropped


def embed_responses_to_openai(
    bodies: list[dict], *, model: str, encoding_format: str | None = None
) -> tuple[dict, Usage]:
    """Titan's answers (`{embedding, inputTextTokenCount}`, one per input, in input order) as
    one OpenAI embeddings list. encoding_format "base64" (the openai SDK's default) is OpenAI's:
    the little-endian float32 array, base64-encoded."""
    data = []
    tokens = 0
    try:
        for i, body in enumerate(bodies):
            vector = body["embedding"]
            tokens += body.get("inputTextTokenCount") or 0
            if encoding_format == "base64":
                packed = array.array("f", vector)
                if sys.byteorder != "little":
                    packed.byteswap()
                vector = base64.b64encode(packed.tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
    except (KeyError, TypeError, AttributeError) as exc:
        raise Malformed(f"not a Titan embedding: {exc!r}") from None
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return answer, Usage(input_tokens=tokens)


# --- Cohere Embed (v3) on Bedrock: one InvokeModel call for up to 96 texts -----------------------

COHERE_MAX_TEXTS = 96


def cohere_embed_request_from_openai(body: dict, *, model: str) -> tuple[dict, list[str]]:
    """One InvokeModel body for Cohere Embed on Bedrock, and the dropped parameters. OpenAI's
    API has no input_type; documents are what an embeddings call usually indexes, so
    "search_document" is sent (a query embedded this way still compares well, if not best)."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise Unsupported("input", "this model embeds text only: a string or a list of strings")
    if len(inputs) > COHERE_MAX_TEXTS:
        raise Unsupported("input", f"this model embeds at most {COHERE_MAX_TEXTS} inputs a call")
    if body.get("dimensions") is not None:
        raise Unsupported("dimensions", "this model embeds in a fixed number of dimensions")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise Unsupported("encoding_format", "encoding_format must be float or base64")
    dropped = ["user"] if body.get("user") is not None else []
    request = {"texts": inputs, "input_type": "search_document", "embedding_types": ["float"]}
    return request, dropped


def cohere_embed_response_to_openai(
    body: dict, *, model: str, input_tokens: int = 0, encoding_format: str | None = None
) -> tuple[dict, Usage]:
    """Cohere's answer as an OpenAI embeddings list. Cohere's body has no token count: Bedrock
    sends it in the x-amzn-bedrock-input-token-count header, which the adapter passes as
    `input_tokens`."""
    embeddings = body.get("embeddings") if isinstance(body, dict) else None
    if isinstance(embeddings, dict):  # embedding_types given: {"float": [[...], ...]}
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        raise Malformed("not a Cohere embedding answer")
    answers = [{"embedding": vector} for vector in embeddings]
    answer, _ = embed_responses_to_openai(answers, model=model, encoding_format=encoding_format)
    answer["usage"] = {"prompt_tokens": input_tokens, "total_tokens": input_tokens}
    return answer, Usage(input_tokens=input_tokens)
