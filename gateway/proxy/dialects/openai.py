"""The OpenAI dialect: /v1 chat and embeddings, and the Azure-style paths. Its error shape and
usage sniffing are the relay's and errors.py's defaults, so this costs the hot path nothing."""

from .. import validation
from ..errors import GatewayError, error_response
from ..streaming import error_event
from .base import Dialect


class OpenAIDialect(Dialect):
    name = "openai"
    # Azure OpenAI clients send the key in `api-key`.
    key_header = "api-key"

    def __init__(self) -> None:
        self.validators = {
            "chat.completions": validation.validate_chat,
            "embeddings": validation.validate_embeddings,
        }

    def error_response(self, exc: GatewayError, request_id: str):
        return error_response(exc, request_id)

    def stream_error(self, message: str, code: str) -> bytes:
        return error_event(message, code)


OPENAI = OpenAIDialect()
