"""What a chat request needs of a deployment, and the candidates that have it.

Computed once per request from the validated body, then checked against each candidate's
capabilities (routing/capabilities.py): pure CPU, a few dict lookups per request and a few
attribute reads per candidate. Candidates that lack something the request needs are dropped, so
the request goes to one that has it; when none has it, the request is refused with 400 naming
what it needs (`param`), instead of an upstream call that fails or, worse, silently ignores it.

Checks run in a fixed order (tools, vision, JSON mode, streaming, output tokens, context
window), each narrowing the candidates the next one sees: a request needing tools and images
is refused when the deployments with tools lack vision, even if another has vision alone.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from routing.capabilities import FEATURE_LABELS
from routing.providers.usage import estimate_tokens
from routing.selectors import Route

from .errors import BadRequest

# Tokens are estimated at no fewer than four characters each (usage.py), and every character of
# the prompt is at least one byte of the body: body bytes / 4 bounds the estimate from above.
_BYTES_PER_TOKEN = 4
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


@dataclass(slots=True)
class Needs:
    # (capability, the request field that needs it), in check order.
    features: tuple[tuple[str, str], ...]
    output_tokens: int  # the largest answer asked for; 0: not given
    output_param: str  # "max_completion_tokens" or "max_tokens"
    messages: list
    prompt_bound: int  # no estimate of the prompt exceeds this
    _prompt: int | None = None

    def prompt_tokens(self) -> int:
        """The prompt's estimated tokens, counted the first time they are asked for."""
        if self._prompt is None:
            self._prompt = estimate_tokens(self.messages)
        return self._prompt


def _image_part(messages: list) -> str | None:
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") == "image_url":
                    return f"messages[{i}].content[{j}]"
    return None


def _tools_param(data: dict) -> str | None:
    if data.get("tools"):
        return "tools"
    if data.get("tool_choice") not in (None, "none"):
        return "tool_choice"
    # The API's deprecated function calling: the same capability.
    if data.get("functions"):
        return "functions"
    if data.get("function_call") not in (None, "none"):
        return "function_call"
    return None


def chat_needs(data: dict, body_len: int) -> Needs:
    """What a chat body needs; `data` has passed validation.validate_chat (types are known)."""
    features = []
    if param := _tools_param(data):
        features.append(("tools", param))
    messages = data["messages"]
    if param := _image_part(messages):
        features.append(("vision", param))
    response_format = data.get("response_format")
    if response_format and response_format.get("type") in _JSON_FORMATS:
        features.append(("json_mode", "response_format"))
    if data.get("stream") is True:
        features.append(("streaming", "stream"))
    # OpenAI reads max_completion_tokens first; max_tokens is its older name.
    output_param = "max_completion_tokens"
    output_tokens = data.get(output_param)
    if output_tokens is None:
        output_param, output_tokens = "max_tokens", data.get("max_tokens")
    return Needs(
        features=tuple(features),
        output_tokens=output_tokens or 0,
        output_param=output_param,
        messages=messages,
        prompt_bound=max(1, body_len // _BYTES_PER_TOKEN),
    )


def _narrowed(met: list[str]) -> str:
    if not met:
        return ""
    return " with " + " and ".join(FEATURE_LABELS[name] for name in met)


def _lacking(model: str, feature: str, param: str, met: list[str]) -> BadRequest:
    return BadRequest(
        f"No deployment of model '{model}'{_narrowed(met)} supports {FEATURE_LABELS[feature]}, "
        f"which '{param}' needs.",
        param=param,
        code="capability_not_supported",
    )


def _output_too_large(model: str, needs: Needs, limit: int, met: list[str]) -> BadRequest:
    return BadRequest(
        f"'{needs.output_param}' is {needs.output_tokens}, more than the {limit} output tokens "
        f"the deployments of model '{model}'{_narrowed(met)} allow.",
        param=needs.output_param,
        code="max_output_tokens_exceeded",
    )


def _context_exceeded(model: str, needs: Needs, window: int, met: list[str]) -> BadRequest:
    prompt = needs.prompt_tokens()
    if needs.output_tokens:
        asked = (
            f"The prompt (about {prompt} tokens, estimated) plus '{needs.output_param}' "
            f"({needs.output_tokens}) is {prompt + needs.output_tokens} tokens,"
        )
    else:
        asked = f"The prompt (about {prompt} tokens, estimated) is"
    # The prompt is what to shorten, unless it fits and only the answer asked for does not.
    param = needs.output_param if needs.output_tokens and prompt <= window else "messages"
    return BadRequest(
        f"{asked} more than the context window of model '{model}'{_narrowed(met)}: "
        f"{window} tokens.",
        param=param,
        code="context_length_exceeded",
    )


def capable_routes(routes: Sequence[Route], needs: Needs, model: str) -> Sequence[Route]:
    """The candidates that have what the request needs, in their order; BadRequest if none."""
    met: list[str] = []
    for feature, param in needs.features:
        kept = tuple(r for r in routes if getattr(r.capabilities, feature))
        if not kept:
            raise _lacking(model, feature, param, met)
        routes = kept
        met.append(feature)
    if needs.output_tokens:
        asked = needs.output_tokens
        kept = tuple(
            r
            for r in routes
            if r.capabilities.max_output_tokens is None or asked <= r.capabilities.max_output_tokens
        )
        if not kept:
            limit = max(r.capabilities.max_output_tokens for r in routes)
            raise _output_too_large(model, needs, limit, met)
        routes = kept
    windows = [w for r in routes if (w := r.capabilities.context_window) is not None]
    # Estimating walks the messages: only when some window could be too small.
    if windows and needs.prompt_bound + needs.output_tokens > min(windows):
        total = needs.prompt_tokens() + needs.output_tokens
        kept = tuple(
            r
            for r in routes
            if r.capabilities.context_window is None or total <= r.capabilities.context_window
        )
        if not kept:
            raise _context_exceeded(model, needs, max(windows), met)
        routes = kept
    return routes
