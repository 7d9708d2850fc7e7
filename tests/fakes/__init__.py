"""Fake provider servers speaking Anthropic's, Gemini's and Bedrock's real wire formats.

One module per provider (anthropic, gemini, bedrock), the shared server and fault machinery
in base, the deterministic answers in rules, SigV4 and AWS event-stream in sigv4 and
eventstream, response readers in wire, pytest fixtures in fixtures, and golden examples from
the providers' documentation in golden/.
"""

from .anthropic import FakeAnthropic
from .bedrock import FakeBedrock
from .gemini import FakeGemini

__all__ = ["FakeAnthropic", "FakeBedrock", "FakeGemini"]
