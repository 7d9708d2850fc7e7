"""What a deployment can do: the capabilities routing filters on and the hot path enforces.

Declared once here: the YAML names (`capabilities: {tools: true, ...}`), the Deployment fields
that store them, and the value the routing table's Route carries.

The four features default to True. Before they existed every request went to every deployment,
and an upstream that could not honour one refused it itself; True keeps existing rows and
configuration files routing exactly as before. Most chat models an OpenAI-style API serves take
tools, JSON mode and streaming, and many take images; a deployment author turns off what a model
lacks, and requests that need it then go to a deployment that has it, or get a clear 400 here
instead of a vendor's error (or a vendor quietly ignoring an image). The two limits default to
None: unknown, never checked.
"""

from dataclasses import dataclass

# (YAML name, Deployment field, how messages describe it).
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("tools", "supports_tools", "tools (function calling)"),
    ("vision", "supports_vision", "image input (vision)"),
    ("json_mode", "supports_json_mode", "JSON mode (response_format)"),
    ("streaming", "supports_streaming", "streaming"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in FEATURES)
FEATURE_FIELDS: dict[str, str] = {name: field for name, field, _ in FEATURES}
FEATURE_LABELS: dict[str, str] = {name: label for name, _, label in FEATURES}
# Token limits; the YAML name is the Deployment field's.
LIMITS: tuple[str, ...] = ("context_window", "max_output_tokens")
NAMES: tuple[str, ...] = tuple(sorted(FEATURE_NAMES + LIMITS))


@dataclass(frozen=True, slots=True)
class Capabilities:
    # Tokens the model reads and writes in one request (prompt + output); None: unknown.
    context_window: int | None = None
    # Most tokens one answer may have; None: unknown.
    max_output_tokens: int | None = None
    tools: bool = True
    vision: bool = True
    json_mode: bool = True
    streaming: bool = True

    def lacking(self) -> tuple[str, ...]:
        """The features this deployment does not have, by YAML name."""
        return tuple(name for name in FEATURE_NAMES if not getattr(self, name))


DEFAULT = Capabilities()


def capabilities_of(deployment) -> Capabilities:
    """A Deployment's capabilities (any object with its fields)."""
    return Capabilities(
        context_window=deployment.context_window,
        max_output_tokens=deployment.max_output_tokens,
        **{name: bool(getattr(deployment, field)) for name, field in FEATURE_FIELDS.items()},
    )
