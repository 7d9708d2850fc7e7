"""What every inbound dialect provides (see the package docstring)."""

from collections.abc import Callable

from django.http import HttpResponse

from ..errors import GatewayError
from ..streaming import STREAM_ERROR_STATUS

__all__ = ["STREAM_ERROR_STATUS", "Dialect"]


class Dialect:
    name: str  # the wire format (routing.formats codec name)
    # Where a key may be besides `Authorization: Bearer`.
    key_header: str
    # Validators by endpoint (pipeline.CHAT, pipeline.MESSAGES, ...).
    validators: dict[str, Callable[[dict], object]]

    def error_response(self, exc: GatewayError, request_id: str) -> HttpResponse:
        raise NotImplementedError

    def stream_error(self, message: str, code: str) -> bytes:
        """The event that ends a stream the gateway had to cut short."""
        raise NotImplementedError

    def chat_view(self, data: dict) -> dict:
        """The request as an OpenAI chat body, for what works on that shape (needs.py)."""
        return data

    def usage_sniffer(self):
        """For passthrough streams of this format not OpenAI's: reads usage, end and errors from
        the events (None: the relay's own OpenAI sniffing)."""
        return None
