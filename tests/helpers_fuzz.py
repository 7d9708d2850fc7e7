"""Hypothesis strategies for the fuzz tests: bodies that follow each wire format (OpenAI chat and
embeddings, Anthropic Messages), arbitrary JSON, and valid bodies with one field broken.

Valid strategies stay inside what the dialects' schemas accept (gateway/proxy/validation.py,
dialects/anthropic.py) but reach their corners: empty strings, any unicode, the largest
numbers in range, nested content parts, tool calls with JSON arguments.
"""

import orjson
from hypothesis import strategies as st

# Any unicode a JSON string can hold (no lone surrogates: no client can encode them).
texts = st.text(max_size=24)
nonempty = st.text(min_size=1, max_size=24)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True)
ids = st.from_regex(r"(call|toolu)_[A-Za-z0-9]{1,12}", fullmatch=True)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Token counts up to int32: what an upstream reports and a Postgres integer column holds.
counts = st.integers(min_value=0, max_value=2**31 - 1)
max_tokens = st.integers(min_value=1, max_value=2**31 - 1)


def floats(low: float, high: float):
    return st.floats(min_value=low, max_value=high, allow_nan=False)


scalars = st.none() | st.booleans() | INT64 | floats(-1e300, 1e300) | texts
# JSON values of any shape; keys mix the fields the formats name with arbitrary text, so
# arbitrary bodies reach the paths a parser actually reads.
FIELD_NAMES = [
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "id",
    "tools",
    "tool_choice",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "temperature",
    "stop",
    "input",
    "metadata",
    "system",
    "tool_use_id",
    "tool_call_id",
    "image_url",
    "url",
    "source",
    "data",
    "input_schema",
    "parameters",
    "response_format",
    "json_schema",
    "max_completion_tokens",
    "user",
    "n",
]
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=24,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)
arguments = st.dictionaries(texts, scalars, max_size=3).map(lambda d: orjson.dumps(d).decode())
metadata = st.dictionaries(names, texts, max_size=3)

# --- OpenAI chat --------------------------------------------------------------------------------

text_part = st.builds(lambda t: {"type": "text", "text": t}, texts)
image_part = st.builds(
    lambda url: {"type": "image_url", "image_url": {"url": url}},
    st.sampled_from(
        ["https://example.com/cat.png", "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="]
    ),
)
openai_content = texts | st.lists(text_part, min_size=1, max_size=3)
openai_tool_call = st.builds(
    lambda id_, name, args: {
        "id": id_,
        "type": "function",
        "function": {"name": name, "arguments": args},
    },
    ids,
    names,
    arguments,
)


def _message(role: str, **fields):
    return st.fixed_dictionaries({"role": st.just(role), **fields})


openai_messages = st.lists(
    st.one_of(
        _message("system", content=openai_content),
        _message("developer", content=openai_content),
        _message("user", content=texts | st.lists(text_part | image_part, min_size=1, max_size=3)),
        _message("assistant", content=openai_content),
        _message(
            "assistant",
            content=st.none(),
            tool_calls=st.lists(openai_tool_call, min_size=1, max_size=3),
        ),
        _message("tool", tool_call_id=ids, content=openai_content),
    ),
    min_size=1,
    max_size=6,
)
openai_tool = st.builds(
    lambda name, description: {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    },
    names,
    texts,
)
openai_chat = st.fixed_dictionaries(
    {"model": nonempty, "messages": openai_messages},
    optional={
        "temperature": floats(0, 2),
        "top_p": floats(0, 1),
        "max_tokens": max_tokens,
        "max_completion_tokens": max_tokens,
        "stop": texts | st.lists(texts, max_size=4),
        "seed": INT64,
        "n": st.integers(min_value=1, max_value=4),
        "presence_penalty": floats(-2, 2),
        "frequency_penalty": floats(-2, 2),
        "logit_bias": st.dictionaries(
            st.from_regex(r"[0-9]{1,6}", fullmatch=True), floats(-100, 100), max_size=2
        ),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "tools": st.lists(openai_tool, min_size=1, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "parallel_tool_calls": st.booleans(),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        "user": texts,
        "metadata": metadata,
        "logprobs": st.booleans(),
    },
)

# --- OpenAI embeddings --------------------------------------------------------------------------

tokens = st.lists(st.integers(min_value=0, max_value=2**31 - 1), min_size=1, max_size=5)
embeddings = st.fixed_dictionaries(
    {
        "model": nonempty,
        "input": nonempty
        | st.lists(nonempty, min_size=1, max_size=4)
        | tokens
        | st.lists(tokens, min_size=1, max_size=3),
    },
    optional={
        "dimensions": st.integers(min_value=1, max_value=2**31 - 1),
        "encoding_format": st.sampled_from(["float", "base64"]),
        "user": texts,
    },
)

# --- Anthropic Messages -------------------------------------------------------------------------

a_text = st.builds(lambda t: {"type": "text", "text": t}, texts)
a_image = st.sampled_from(
    [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
    ]
)
a_tool_use = st.builds(
    lambda id_, name, input_: {"type": "tool_use", "id": id_, "name": name, "input": input_},
    ids,
    names,
    st.dictionaries(texts, scalars, max_size=3),
)
a_tool_result = st.builds(
    lambda id_, content, error: {
        "type": "tool_result",
        "tool_use_id": id_,
        "content": content,
        **({"is_error": True} if error else {}),
    },
    ids,
    texts | st.lists(a_text, min_size=1, max_size=2),
    st.booleans(),
)
a_thinking = st.builds(
    lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, texts, texts
)
anthropic_messages = st.lists(
    st.one_of(
        _message(
            "user",
            content=texts | st.lists(a_text | a_image | a_tool_result, min_size=1, max_size=3),
        ),
        _message(
            "assistant",
            content=texts | st.lists(a_text | a_tool_use | a_thinking, min_size=1, max_size=3),
        ),
    ),
    min_size=1,
    max_size=6,
)
anthropic_tool = st.builds(
    lambda name, description: {
        "name": name,
        "description": description,
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
    },
    names,
    texts,
)
anthropic_chat = st.fixed_dictionaries(
    {"model": nonempty, "max_tokens": max_tokens, "messages": anthropic_messages},
    optional={
        "system": texts | st.lists(a_text, min_size=1, max_size=2),
        "temperature": floats(0, 1),
        "top_p": floats(0, 1),
        "top_k": st.integers(min_value=0, max_value=2**31 - 1),
        "stop_sequences": st.lists(texts, max_size=4),
        "stream": st.booleans(),
        "tools": st.lists(anthropic_tool, min_size=1, max_size=3),
        "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}])
        | names.map(lambda n: {"type": "tool", "name": n}),
        "metadata": st.fixed_dictionaries({"user_id": texts}),
    },
)


# --- breaking one field of a valid body ---------------------------------------------------------


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


@st.composite
def broken(draw, valid):
    """A valid body with one value (at any depth) replaced by arbitrary JSON, or removed."""
    body = orjson.loads(orjson.dumps(draw(valid)))  # a deep copy
    paths = [p for p in _paths(body) if p]
    path = draw(st.sampled_from(paths))
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return body
