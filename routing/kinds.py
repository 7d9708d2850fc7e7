"""Provider kinds, declared once: the model's choices, the adapter registry, loadconfig's
vocabulary and the admin's validation all read this table."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderKind:
    value: str  # stored in Provider.kind and written in YAML
    label: str
    adapter: str  # "module:Class", imported on first use (never from request or config data)
    needs_api_base: bool = False  # no default endpoint: the admin must give one


KINDS: tuple[ProviderKind, ...] = (
    ProviderKind("openai", "OpenAI", "routing.providers.openai:OpenAIAdapter"),
    ProviderKind(
        "openai_compatible",
        "OpenAI-compatible (vLLM, Ollama, Mistral, Groq…)",
        "routing.providers.openai:OpenAICompatibleAdapter",
        needs_api_base=True,
    ),
    ProviderKind("anthropic", "Anthropic", "routing.providers.anthropic:AnthropicAdapter"),
    ProviderKind(
        "mock",
        "Mock (built-in fake model for demos and tests)",
        "routing.providers.mock:MockAdapter",
    ),
)
BY_VALUE: dict[str, ProviderKind] = {k.value: k for k in KINDS}


def kind_choices() -> list[tuple[str, str]]:
    return [(k.value, k.label) for k in KINDS]


def needs_api_base(kind: str) -> bool:
    found = BY_VALUE.get(kind)
    return found is not None and found.needs_api_base
