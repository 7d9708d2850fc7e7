"""Provider adapters, one module per kind, looked up by a fixed string registry.

The registry maps a Provider.kind to a module path that only ever comes from this file, never from
request or config data; modules are imported on first use so a deployment only loads what it uses.
"""

from functools import cache
from importlib import import_module

from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream, Usage

_REGISTRY: dict[str, str] = {
    "openai": "routing.providers.openai:OpenAIAdapter",
    "openai_compatible": "routing.providers.openai:OpenAICompatibleAdapter",
    "mock": "routing.providers.mock:MockAdapter",
}

__all__ = [
    "ProviderAdapter",
    "ProviderError",
    "UpstreamResponse",
    "UpstreamStream",
    "Usage",
    "get_adapter",
    "known_kinds",
]


def known_kinds() -> list[str]:
    return sorted(_REGISTRY)


@cache
def get_adapter(kind: str) -> ProviderAdapter:
    module_path, _, class_name = _REGISTRY[kind].partition(":")
    return getattr(import_module(module_path), class_name)()
