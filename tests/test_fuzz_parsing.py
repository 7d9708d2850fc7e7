"""Property-based tests of the inbound side, without a server: parsing (parsing.py), the dialects'
validation (validation.py, dialects/), what a request needs (needs.py), cost tags (tags.py),
the Azure-style paths' api-version (azure.py) and each dialect's error shape.

Whatever a client sends, these raise nothing but the gateway's own error types (a 4xx in the
dialect's shape); what follows a wire format is accepted. The pure chain a body goes through
before any network call (parse, validate, needs, translation for a provider of another format)
is run as the pipeline runs it.
"""

import contextlib

import orjson
import pytest
from django.test import RequestFactory, override_settings
from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy import azure, needs, parsing, tags
from gateway.proxy.dialects import ANTHROPIC, OPENAI
from gateway.proxy.errors import (
    AuthenticationFailed,
    BadRequest,
    GatewayError,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
    UpstreamFailed,
)
from routing.formats import FORMATS, Unsupported, translate_request
from routing.formats.errors import ANTHROPIC_TYPES

from . import helpers_fuzz as f

CHAT, EMBEDDINGS, MESSAGES = "chat.completions", "embeddings", "messages"
# The other formats a chat request may be translated into (crossing.plan).
TARGETS = {
    "openai": ("anthropic", "gemini", "bedrock"),
    "anthropic": ("openai", "gemini", "bedrock"),
}


def inbound(body: bytes, dialect, endpoint: str) -> dict:
    """What the pipeline does with a body before the network: parse, validate, work out the
    needs, translate for every other wire format. Only GatewayError (or the codec's Unsupported,
    which crossing.plan turns into a 400) may come out."""
    data = parsing.parse_json_object(body)
    dialect.validators[endpoint](data)
    if endpoint != EMBEDDINGS:
        wanted = needs.chat_needs(dialect.chat_view(data), len(body))
        wanted.prompt_tokens()
        for target in TARGETS[dialect.name]:
            with contextlib.suppress(Unsupported):
                translate_request(data, source=dialect.name, target=target, model="up")
    return data


def refused(body: bytes, dialect, endpoint: str) -> GatewayError | None:
    try:
        inbound(body, dialect, endpoint)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
        return exc
    return None


DIALECTS = [(OPENAI, CHAT), (OPENAI, EMBEDDINGS), (ANTHROPIC, MESSAGES)]
VALID = {CHAT: f.openai_chat, EMBEDDINGS: f.embeddings, MESSAGES: f.anthropic_chat}


# --- anything a client may send -------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "endpoint"), DIALECTS)
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_a_client_error(dialect, endpoint, body):
    refused(body, dialect, endpoint)


@pytest.mark.parametrize(("dialect", "endpoint"), DIALECTS)
@given(value=f.json_values)
def test_arbitrary_json_never_raises_anything_but_a_client_error(dialect, endpoint, value):
    refused(orjson.dumps(value), dialect, endpoint)


@pytest.mark.parametrize(("dialect", "endpoint"), DIALECTS)
@given(data=st.data())
def test_a_valid_body_with_one_field_broken_is_refused_or_served(dialect, endpoint, data):
    body = data.draw(f.broken(VALID[endpoint]))
    exc = refused(orjson.dumps(body), dialect, endpoint)
    if exc is not None and exc.param is not None:
        # The field named is one of the body's (or a missing required one's) top-level fields.
        required = {"model", "messages", "input", "max_tokens"}
        assert exc.param.split(".")[0].split("[")[0] in {*body, *required}, exc


@given(body=f.openai_chat)
def test_every_openai_chat_body_of_the_wire_format_is_accepted(body):
    assert refused(orjson.dumps(body), OPENAI, CHAT) is None


@given(body=f.embeddings)
def test_every_embeddings_body_of_the_wire_format_is_accepted(body):
    assert refused(orjson.dumps(body), OPENAI, EMBEDDINGS) is None


@given(body=f.anthropic_chat)
def test_every_anthropic_messages_body_of_the_wire_format_is_accepted(body):
    assert refused(orjson.dumps(body), ANTHROPIC, MESSAGES) is None
    # count_tokens takes the same body, max_tokens aside.
    ANTHROPIC.validators["messages.count_tokens"](
        {k: v for k, v in body.items() if k != "max_tokens"}
    )


@given(body=f.openai_chat, value=st.one_of(f.floats(2.0001, 1e300), f.floats(-1e300, -0.0001)))
def test_an_out_of_range_temperature_is_refused_naming_it(body, value):
    exc = refused(orjson.dumps({**body, "temperature": value}), OPENAI, CHAT)
    assert exc is not None and exc.param == "temperature"


@given(body=f.openai_chat)
def test_the_needs_read_the_largest_answer_asked_for(body):
    wanted = needs.chat_needs(body, len(orjson.dumps(body)))
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    assert wanted.output_tokens == (asked or 0)
    assert wanted.prompt_bound >= 1
    assert ("streaming", "stream") in wanted.features or body.get("stream") is not True


# --- fields that try to pick the upstream ---------------------------------------------------------


@given(
    body=f.openai_chat,
    field=st.sampled_from(sorted(parsing.FORBIDDEN_FIELDS)) | st.just("aws_secret_access_key"),
    container=st.sampled_from(["metadata", "extra_body"]),
    depth=st.integers(min_value=0, max_value=5),
)
def test_a_forbidden_field_is_found_at_any_depth_of_metadata_and_extra_body(
    body, field, container, depth
):
    nested: dict = {field: "https://attacker.example"}
    for _ in range(depth):
        nested = {"inner": [nested]}
    with pytest.raises(BadRequest) as caught:
        parsing.parse_json_object(orjson.dumps({**body, container: nested}))
    assert caught.value.code == "forbidden_field"
    assert caught.value.param.startswith(container) and caught.value.param.endswith(field)


@given(body=f.openai_chat | f.anthropic_chat)
def test_a_body_that_names_no_upstream_setting_passes_the_forbidden_field_check(body):
    assert parsing.find_forbidden(body) is None


# --- headers, tags, the Azure api-version ---------------------------------------------------------

factory = RequestFactory()
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)


@given(value=header_values)
@override_settings(GATEWAY_FORWARD_HEADERS=["x-trace"])
def test_a_forwarded_header_is_refused_exactly_when_it_is_not_ascii(value):
    request = factory.post("/v1/chat/completions", HTTP_X_TRACE=value)
    if value.isascii():
        parsing.check_forwarded_headers(request)
    else:
        with pytest.raises(BadRequest):
            parsing.check_forwarded_headers(request)


tag_keys = st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True)
tag_values = st.from_regex(r"[A-Za-z0-9_.:/@+-]{1,64}", fullmatch=True)


@given(header=header_values, metadata=f.json_values, allowed=st.frozensets(tag_keys, max_size=4))
def test_arbitrary_tags_are_parsed_or_refused_naming_where(header, metadata, allowed):
    request = factory.post("/v1/chat/completions", HTTP_X_GATEWAY_TAGS=header)
    try:
        found = tags.parse(request, {"metadata": metadata}, allowed)
    except BadRequest as exc:
        assert exc.param in (tags.HEADER, "metadata") and exc.code == "invalid_tags"
    else:
        assert len(found) <= tags.MAX_TAGS and set(found) <= allowed


@given(given_tags=st.dictionaries(tag_keys, tag_values, min_size=1, max_size=tags.MAX_TAGS))
def test_tags_of_allowed_keys_come_back_as_given(given_tags):
    header = ", ".join(f"{k}={v}" for k, v in given_tags.items())
    request = factory.post("/v1/chat/completions", HTTP_X_GATEWAY_TAGS=header)
    assert tags.parse(request, {}, frozenset(given_tags)) == given_tags


@given(versions=st.lists(st.text(max_size=24), max_size=2))
def test_an_api_version_is_accepted_exactly_when_given_once_as_a_date(versions):
    query = "&".join(f"api-version={v}" for v in versions)
    request = factory.post(f"/openai/deployments/m/chat/completions?{query}")
    error = azure.api_version_error(request)
    values = request.GET.getlist("api-version")
    ok = len(values) == 1 and azure._API_VERSION_FORMAT.fullmatch(values[0]) is not None
    assert (error is None) == ok
    if error is not None:
        assert error.status == 400 and error.param == "api-version"


@given(version=st.from_regex(r"\d{4}-\d{2}-\d{2}(-[a-z]+)?", fullmatch=True))
def test_a_date_based_api_version_is_accepted(version):
    request = factory.post(f"/openai/deployments/m/chat/completions?api-version={version}")
    assert azure.api_version_error(request) is None


# --- error shapes ---------------------------------------------------------------------------------

errors = st.one_of(
    st.builds(BadRequest, f.texts, param=st.none() | f.texts, code=st.none() | f.names),
    st.builds(RequestTooLarge, f.texts),
    st.builds(AuthenticationFailed, f.texts),
    st.builds(PermissionDenied, f.texts),
    st.builds(ModelNotFound, f.texts, param=st.just("model")),
    st.builds(RateLimited, f.texts, headers=st.just({"Retry-After": "3"})),
    st.builds(ServiceUnavailable, f.texts),
    st.builds(UpstreamFailed, f.texts, status=st.sampled_from([502, 503, 504]), code=f.names),
)


@given(exc=errors, request_id=f.names)
def test_every_error_renders_in_openais_shape(exc, request_id):
    response = OPENAI.error_response(exc, request_id)
    body = orjson.loads(response.content)
    assert response.status_code == exc.status and response["x-request-id"] == request_id
    assert set(body) == {"error"}
    error = body["error"]
    assert (error["message"], error["type"], error["param"], error["code"]) == (
        exc.message,
        exc.type,
        exc.param,
        exc.code,
    )
    for name, value in exc.headers.items():
        assert response[name] == value


@given(exc=errors, request_id=f.names)
def test_every_error_renders_in_anthropics_shape(exc, request_id):
    response = ANTHROPIC.error_response(exc, request_id)
    body = orjson.loads(response.content)
    assert response.status_code == exc.status
    assert body["type"] == "error" and body["request_id"] == request_id
    assert body["error"]["type"] in ANTHROPIC_TYPES
    assert body["error"]["message"] == exc.message


@pytest.mark.parametrize("name", sorted(FORMATS))
@given(status=st.integers(min_value=400, max_value=599), message=f.texts, type_=f.texts)
def test_every_codecs_error_body_is_json_carrying_the_message(name, status, message, type_):
    codec = FORMATS[name]
    body = orjson.loads(codec.error_body(status, type_, message))
    assert message in (body.get("message"), (body.get("error") or {}).get("message"))
