"""Provider adapters, one module per kind, looked up through the kinds table (routing/kinds.py).

Adapter modules are imported on first use, so a deployment only loads what it uses; the module
path only ever comes from kinds.py, never from request or config data.
"""

from functools import cache
from importlib import import_module

from routing.kinds import BY_VALUE, KINDS, needs_api_base

from .base import ProviderAdapter, ProviderError, UpstreamResponse, UpstreamStream, Usage

__all__ = [
    "ProviderAdapter",
    "ProviderError",
    "UpstreamResponse",
    "UpstreamStream",
    "Usage",
    "get_adapter",
    "known_kinds",
    "needs_api_base",
]


def known_kinds() -> list[str]:
    return sorted(k.value for k in KINDS)


@cache
def get_adapter(kind: str) -> ProviderAdapter:
    module_path, _, class_name = BY_VALUE[kind].adapter.partition(":")
    return getattr(import_module(module_path), class_name)()
