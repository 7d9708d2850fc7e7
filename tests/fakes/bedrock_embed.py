"""InvokeModel for Bedrock's embedding models: Amazon Titan Text Embeddings and Cohere Embed.

References: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
and https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html.

Titan v2 (`amazon.titan-embed-text-v2:0`) takes {"inputText", "dimensions" (256, 512 or 1024,
default 1024), "normalize", "embeddingTypes"} and answers {"embedding", "inputTextTokenCount",
"embeddingsByType"}; Titan v1 takes only inputText and answers 1536 dimensions. Cohere takes
{"texts", "input_type", ...} and answers {"embeddings", "id", "response_type", "texts"}.
Malformed bodies get Bedrock's "Malformed input request: #: ..." ValidationException.
The token count headers are those InvokeModel responses carry.
"""

from . import rules
from .base import Reply, json_reply

_TITAN_V2 = {"inputText", "dimensions", "normalize", "embeddingTypes"}
_COHERE = {"texts", "input_type", "truncate", "embedding_types", "images"}


class Invalid(Exception):
    """A request Bedrock refuses with a ValidationException (400)."""


def invoke(model: str, body: object, request_id: str) -> Reply:
    if not isinstance(body, dict):
        raise Invalid("Malformed input request: #: expected type: JSONObject, please reformat.")
    if model.startswith("amazon.titan-embed-text"):
        answer, tokens = _titan(model, body)
    elif model.startswith("cohere.embed"):
        answer, tokens = _cohere(body, request_id)
    else:
        raise Invalid(f"The fake serves InvokeModel only for embedding models, not {model}.")
    headers = {
        "x-amzn-requestid": request_id,
        "x-amzn-bedrock-invocation-latency": "10",
        "x-amzn-bedrock-input-token-count": str(tokens),
    }
    return json_reply(answer, headers=headers)


def _malformed(detail: str) -> Invalid:
    return Invalid(f"Malformed input request: {detail}, please reformat your input and try again.")


def _titan(model: str, body: dict) -> tuple[dict, int]:
    allowed = _TITAN_V2 if model.startswith("amazon.titan-embed-text-v2") else {"inputText"}
    for name in body:
        if name not in allowed:
            raise _malformed(f"#: extraneous key [{name}] is not permitted")
    text = body.get("inputText")
    if not isinstance(text, str):
        raise _malformed("#: required key [inputText] not found")
    size = body.get("dimensions", 1024 if "v2" in model else 1536)
    if size not in (256, 512, 1024, 1536):
        raise _malformed(f"#/dimensions: {size} is not a valid enum value")
    vector = rules.embedding(text, size, normalize=body.get("normalize", True))
    tokens = rules.count_tokens(text)
    answer: dict = {"embedding": vector, "inputTextTokenCount": tokens}
    if "v2" in model:
        answer["embeddingsByType"] = {"float": vector}
    return answer, tokens


def _cohere(body: dict, request_id: str) -> tuple[dict, int]:
    for name in body:
        if name not in _COHERE:
            raise _malformed(f"#: extraneous key [{name}] is not permitted")
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        raise _malformed("#: required key [texts] not found")
    if "input_type" not in body:
        raise _malformed("#: required key [input_type] not found")
    vectors = [rules.embedding(t, 1024) for t in texts]
    answer: dict = {"id": request_id, "texts": texts}
    if body.get("embedding_types"):
        answer["response_type"] = "embeddings_by_type"
        answer["embeddings"] = {kind: vectors for kind in body["embedding_types"]}
    else:
        answer["response_type"] = "embeddings_floats"
        answer["embeddings"] = vectors
    return answer, sum(rules.count_tokens(t) for t in texts)
