"""Capabilities: carried by the routing table's routes, and what a chat request needs of them.

The refusals as a client sees them (status, error shape, usage row) are in
tests/e2e/test_capabilities.py; here are the rules behind them, case by case.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from gateway.proxy.errors import BadRequest
from gateway.proxy.needs import capable_routes, chat_needs
from routing.capabilities import Capabilities
from routing.selectors import Route, routing_table_build

from .factories import DeploymentFactory, ProviderFactory

# --- The routing table -----------------------------------------------------------------------


def test_routes_carry_their_deployments_capabilities(db):
    provider = ProviderFactory(name="vendor")
    DeploymentFactory(
        provider=provider,
        upstream_model="text-only",
        context_window=32768,
        max_output_tokens=4096,
        supports_vision=False,
        supports_streaming=False,
    )
    DeploymentFactory(provider=provider, upstream_model="unknown-window", context_window=None)

    routes = {r.upstream_model: r for r in routing_table_build().candidates("chat", "small")}

    assert routes["text-only"].capabilities == Capabilities(
        context_window=32768,
        max_output_tokens=4096,
        tools=True,
        vision=False,
        json_mode=True,
        streaming=False,
    )
    assert routes["text-only"].capabilities.lacking() == ("vision", "streaming")
    assert routes["unknown-window"].capabilities == Capabilities()


@pytest.mark.django_db(transaction=True)
def test_migration_turns_a_zero_context_window_into_unknown_and_turns_every_feature_on():
    after = ("routing", "0005_deployment_capabilities")
    executor = MigrationExecutor(connection)
    # Every app's latest, not only routing's: migrating routing back also unapplies the apps
    # that depend on it (compliance), which later tests need back.
    latest = executor.loader.graph.leaf_nodes()
    parents = executor.loader.graph.node_map[after].parents
    [before] = [p.key for p in parents if p.key[0] == "routing"]
    executor.migrate([before])
    try:
        old = MigrationExecutor(connection).loader.project_state([before]).apps
        provider = old.get_model("routing", "Provider").objects.create(name="p", kind="mock")
        OldDeployment = old.get_model("routing", "Deployment")
        for upstream, window in (("zero", 0), ("known", 8192), ("unknown", None)):
            OldDeployment.objects.create(
                provider=provider, model_name="m", upstream_model=upstream, context_window=window
            )

        executor = MigrationExecutor(connection)
        executor.migrate([after])

        apps = executor.loader.project_state([after]).apps
        rows = apps.get_model("routing", "Deployment").objects.all()
        windows = {d.upstream_model: d.context_window for d in rows}
        assert windows == {"zero": None, "known": 8192, "unknown": None}
        for d in rows:
            assert d.supports_tools and d.supports_vision
            assert d.supports_json_mode and d.supports_streaming
            assert d.max_output_tokens is None
    finally:
        MigrationExecutor(connection).migrate(latest)


# --- What a request needs --------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Describe it."}]
IMAGE_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    },
]
TOOL = {"type": "function", "function": {"name": "lookup"}}


def _needs(body_len: int = 100, **fields):
    return chat_needs({"model": "m", "messages": MESSAGES, **fields}, body_len)


@pytest.mark.parametrize(
    ("fields", "features"),
    [
        ({}, ()),
        ({"tools": [TOOL]}, (("tools", "tools"),)),
        ({"tools": [TOOL], "tool_choice": "required"}, (("tools", "tools"),)),
        ({"tool_choice": "auto"}, (("tools", "tool_choice"),)),
        ({"tool_choice": "none"}, ()),
        ({"tools": []}, ()),
        ({"functions": [{"name": "lookup"}]}, (("tools", "functions"),)),
        ({"function_call": {"name": "lookup"}}, (("tools", "function_call"),)),
        ({"messages": IMAGE_MESSAGES}, (("vision", "messages[1].content[1]"),)),
        ({"response_format": {"type": "json_object"}}, (("json_mode", "response_format"),)),
        ({"response_format": {"type": "json_schema"}}, (("json_mode", "response_format"),)),
        ({"response_format": {"type": "text"}}, ()),
        ({"stream": True}, (("streaming", "stream"),)),
        ({"stream": False}, ()),
        (
            {"stream": True, "tools": [TOOL], "response_format": {"type": "json_object"}},
            (("tools", "tools"), ("json_mode", "response_format"), ("streaming", "stream")),
        ),
    ],
)
def test_what_a_request_needs_names_the_field_that_needs_it(fields, features):
    assert _needs(**fields).features == features


def test_max_completion_tokens_is_read_before_max_tokens():
    both = _needs(max_tokens=10, max_completion_tokens=20)
    assert (both.output_param, both.output_tokens) == ("max_completion_tokens", 20)
    old = _needs(max_tokens=10)
    assert (old.output_param, old.output_tokens) == ("max_tokens", 10)
    assert _needs().output_tokens == 0


def _route(name: str, **capabilities) -> Route:
    return Route(
        deployment_id=hash(name) % 1000,
        model_name="m",
        upstream_model=name,
        mode="chat",
        provider_id=1,
        provider_name="p",
        provider_kind="openai_compatible",
        api_base="https://example.com/v1",
        capabilities=Capabilities(**capabilities),
    )


def _refusal(routes, needs) -> BadRequest:
    with pytest.raises(BadRequest) as excinfo:
        capable_routes(routes, needs, "m")
    assert excinfo.value.status == 400
    return excinfo.value


def test_a_request_needing_nothing_keeps_every_candidate_in_order():
    routes = (_route("a", tools=False, vision=False), _route("b", context_window=10**6))
    assert capable_routes(routes, _needs(), "m") == routes


def test_candidates_lacking_a_capability_are_dropped_keeping_the_order_of_the_rest():
    routes = (_route("cheap", tools=False), _route("mid"), _route("dear"))
    kept = capable_routes(routes, _needs(tools=[TOOL]), "m")
    assert [r.upstream_model for r in kept] == ["mid", "dear"]


def test_a_capability_no_candidate_has_is_refused_naming_the_field():
    error = _refusal((_route("a", vision=False),), _needs(messages=IMAGE_MESSAGES))
    assert error.param == "messages[1].content[1]"
    assert error.code == "capability_not_supported"
    assert error.message == (
        "No deployment of model 'm' supports image input (vision), which "
        "'messages[1].content[1]' needs."
    )


def test_capabilities_must_be_found_together_on_one_candidate():
    routes = (_route("tools-only", vision=False), _route("vision-only", tools=False))
    error = _refusal(routes, _needs(messages=IMAGE_MESSAGES, tools=[TOOL]))
    assert error.param == "messages[1].content[1]"
    assert "with tools (function calling) supports image input (vision)" in error.message


def test_output_above_every_candidates_limit_is_refused_naming_the_largest():
    routes = (_route("a", max_output_tokens=1000), _route("b", max_output_tokens=4000))
    error = _refusal(routes, _needs(max_tokens=5000))
    assert (error.param, error.code) == ("max_tokens", "max_output_tokens_exceeded")
    assert error.message == (
        "'max_tokens' is 5000, more than the 4000 output tokens the deployments of model 'm' allow."
    )
    kept = capable_routes(routes, _needs(max_completion_tokens=2000), "m")
    assert [r.upstream_model for r in kept] == ["b"]


def test_an_unknown_output_limit_takes_any_max_tokens():
    kept = capable_routes((_route("a"),), _needs(max_tokens=10**6), "m")
    assert [r.upstream_model for r in kept] == ["a"]


def _long_messages(chars: int) -> list[dict]:
    return [{"role": "user", "content": "x" * chars}]


def test_context_window_counts_the_estimated_prompt_plus_the_output_asked_for():
    # 4,000 characters: about 1,000 tokens.
    messages = _long_messages(4000)
    routes = (_route("small", context_window=1500), _route("large", context_window=3000))
    fits_small = chat_needs({"messages": messages, "max_tokens": 500}, 4100)
    assert [r.upstream_model for r in capable_routes(routes, fits_small, "m")] == [
        "small",
        "large",
    ]
    needs_large = chat_needs({"messages": messages, "max_tokens": 501}, 4100)
    assert [r.upstream_model for r in capable_routes(routes, needs_large, "m")] == ["large"]
    too_long = chat_needs({"messages": messages, "max_tokens": 2001}, 4100)
    error = _refusal(routes, too_long)
    assert (error.param, error.code) == ("max_tokens", "context_length_exceeded")
    assert error.message == (
        "The prompt (about 1000 tokens, estimated) plus 'max_tokens' (2001) is 3001 tokens, "
        "more than the context window of model 'm': 3000 tokens."
    )


def test_a_prompt_alone_beyond_the_context_window_names_the_messages():
    error = _refusal(
        (_route("a", context_window=500),), chat_needs({"messages": _long_messages(4000)}, 4100)
    )
    assert error.param == "messages"
    assert error.message == (
        "The prompt (about 1000 tokens, estimated) is more than the context window of model "
        "'m': 500 tokens."
    )


def test_the_prompt_is_not_estimated_when_the_body_cannot_exceed_any_window():
    needs = chat_needs({"messages": _long_messages(4000)}, 4100)
    capable_routes((_route("a", context_window=2000),), needs, "m")
    assert needs._prompt is None  # the walk through the messages was skipped
    capable_routes((_route("a", context_window=1000),), needs, "m")
    assert needs._prompt == 1000
