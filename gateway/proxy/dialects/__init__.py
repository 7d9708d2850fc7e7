"""Inbound dialects: how a client speaks to the gateway.

A dialect owns its wire format's name (a codec of routing.formats), its request validation,
where it finds the caller's key, its error shape and its in-stream error event. The pipeline
(pipeline.py) is the same for every dialect: auth, policy, routing, the call, the settlement.
A request whose dialect's format is the provider's is passed through untouched; otherwise it is
translated (crossing.py).

    openai     /v1/chat/completions, /v1/embeddings, Azure-style paths
    anthropic  /v1/messages, /v1/messages/count_tokens
"""

from .anthropic import ANTHROPIC
from .base import Dialect
from .openai import OPENAI

__all__ = ["ANTHROPIC", "OPENAI", "Dialect"]
