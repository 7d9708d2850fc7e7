"""The adapter contract every provider module implements.

Each adapter declares its wire `format` (a codec name in routing/formats): `chat` takes a body
in that format and returns the provider's answer in it, `chat_stream` yields its SSE bytes. The
proxy passes same-format traffic through untouched and translates the rest (routing.formats).
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from routing.selectors import Route


class ProviderError(Exception):
    """An upstream failure. `retryable` says whether another deployment may succeed;
    `transient` whether the same deployment may, a moment later (a refused connection, a 5xx),
    as opposed to a timeout, a rejected credential or a 429 that asked us to wait.

    `status`/`body` are what the client sees when the error is the client's own (an upstream
    400 about a bad parameter is passed through); otherwise the proxy maps `kind` to 502/503/504.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        kind: str = "upstream_error",
        status: int = 502,
        body: bytes | None = None,
        upstream_ms: float = 0.0,
        headers: dict[str, str] | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # Set where the failure is known to pass (transport.py: a refused connection, a 5xx or
        # an overload). Never a timeout: the attempt already spent its time and a hang tends to
        # repeat; never a 429: it asked us to wait. Those go to the next candidate.
        self.transient = retryable and transient
        # upstream_error | upstream_unavailable | upstream_timeout | upstream_rate_limited |
        # upstream_response_too_large | client_error
        self.kind = kind
        self.status = status
        self.body = body
        self.upstream_ms = upstream_ms
        # Response headers the client should see when this is the final error (Retry-After).
        self.headers = headers or {}

    @classmethod
    def timeout(cls, message: str, *, upstream_ms: float) -> "ProviderError":
        """A deadline passed before the answer was complete: worth trying elsewhere (504)."""
        return cls(
            message, retryable=True, kind="upstream_timeout", status=504, upstream_ms=upstream_ms
        )


def _nothing() -> None:
    return None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    # True when the upstream did not report usage and the gateway had to estimate it.
    estimated: bool = False


@dataclass(slots=True)
class UpstreamResponse:
    body: bytes
    usage: Usage
    upstream_ms: float
    status: int = 200
    # Client parameters the adapter itself had to drop (an embeddings request it translates):
    # listed in x-gateway-dropped-params like the proxy's own.
    dropped: tuple[str, ...] = ()


@dataclass(slots=True)
class UpstreamStream:
    """An open upstream stream. `first` is the first chunk, read before the stream is handed
    over (a stream that fails before it can still fall back); `chunks` yields the rest.

    `aclose` releases the socket. `abort` may be called from outside the task reading `chunks`
    (a timer, a shutdown): the pending read then fails at once with a transport error.
    """

    chunks: AsyncIterator[bytes]
    upstream_ms: float  # time until the first chunk
    closers: list = field(default_factory=list)
    first: bytes = b""
    abort: Callable[[], None] = _nothing

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


class ProviderAdapter(ABC):
    """One provider kind. Calls keep the route's connect, first-byte and idle timeouts (raising
    ProviderError(kind="upstream_timeout")); the proxy bounds each whole attempt itself."""

    # The wire format of the bodies `chat`/`chat_stream` take and return (routing.formats).
    format: str = "openai"
    # Where a translated OpenAI-format request puts its output limit: OpenAI's reasoning models
    # take only max_completion_tokens, many OpenAI-compatible servers only max_tokens.
    max_tokens_field: str = "max_completion_tokens"

    @abstractmethod
    async def chat(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse: ...

    @abstractmethod
    async def chat_stream(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamStream:
        """Returns once the upstream sent the stream's first chunk; fails (ProviderError) on an
        error status, a body that is not an event stream, or the first-byte timeout. Nothing
        has reached the client yet, so the proxy may still fall back."""

    @abstractmethod
    async def embeddings(
        self, route: Route, payload: dict, headers: dict[str, str]
    ) -> UpstreamResponse: ...

    async def probe(self, route: Route) -> None:
        """The active health check's call (routing/health_checks.py): the cheapest request
        that shows the deployment answers; raises ProviderError when it does not. This
        default sends a 1-token completion (an embedding of one word for an embedding
        deployment); adapters whose provider has a models endpoint ask that instead."""
        if route.mode == "embedding":
            await self.embeddings(route, {"model": route.upstream_model, "input": "ping"}, {})
        else:
            await self.chat(route, self.probe_payload(route), {})

    def probe_payload(self, route: Route) -> dict:
        """A 1-token completion in this adapter's format (OpenAI's unless overridden)."""
        return {
            "model": route.upstream_model,
            "messages": [{"role": "user", "content": "ping"}],
            self.max_tokens_field: 1,
        }
