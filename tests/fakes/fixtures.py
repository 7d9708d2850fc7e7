"""Pytest fixtures for the provider fakes. A test module opts in with

    pytest_plugins = ("tests.fakes.fixtures",)

Servers live for the session (the `*_server` fixtures); the `fake_*` fixtures hand a test a
reset fake and reset it again afterwards, so faults never leak into the next test.
"""

import pytest

from .anthropic import FakeAnthropic
from .bedrock import FakeBedrock
from .gemini import FakeGemini


@pytest.fixture(scope="session")
def anthropic_server():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def gemini_server():
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="session")
def bedrock_server():
    with FakeBedrock() as fake:
        yield fake


def _fresh(fake):
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture
def fake_anthropic(anthropic_server):
    yield from _fresh(anthropic_server)


@pytest.fixture
def fake_gemini(gemini_server):
    yield from _fresh(gemini_server)


@pytest.fixture
def fake_bedrock(bedrock_server):
    yield from _fresh(bedrock_server)
