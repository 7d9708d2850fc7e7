"""A property-based run of the management API against its own OpenAPI schema (schemathesis):
every operation, with generated paths, queries and bodies, in process through Django's WSGI
application, on the real database and Redis, authenticated by a personal access token of a
platform admin (every scope). No answer may be a 5xx, and every answer must match its schema.
Every operation is also called without credentials and with a bogus token (401 each time),
and the schema is checked to list every operation the API's URLs serve.

Path parameters are pointed at real objects of the test's team, so the generated bodies reach
the views' validation and services rather than stopping at a 404. Bounded: a few examples per
operation, so the run stays well under a minute."""

import json
import re

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from tenants.services import api_key_issue

from .factories import AgreementFactory, DailyUsageFactory, DeploymentFactory, UserFactory
from .helpers_api import make_cast, token_for

pytestmark = pytest.mark.django_db


def _schema():
    """The schema drf-spectacular serves at /api/schema/, generated without a request (at
    import: no database needed), and called through Django's WSGI application."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(raw)))
    loaded.app = get_wsgi_application()
    return loaded


schema = _schema()


@pytest.fixture
def in_process_requests(db):
    # Django closes the database connection at the end of each request; in a test that would
    # close the test's transaction. Django's own test client disconnects the same handlers.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(in_process_requests, settings):
    settings.GATEWAY_API_RATE = "100000/min"  # the throttle is tested elsewhere
    cast = make_cast()
    admin = cast.users["platform"]
    key = api_key_issue(team=cast.team, name="fuzzed", owner=admin).api_key
    UserFactory(username="newcomer")
    DailyUsageFactory(team=cast.team)
    DeploymentFactory()
    return {
        "token": token_for(admin),
        "path": {
            "slug": cast.team.slug,
            "key_id": key.pk,
            "member_id": cast.users["viewer"].memberships.get().pk,
            "agreement_id": AgreementFactory().pk,
            "token_id": admin.api_tokens.get().pk,
        },
    }


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces
    database=None,  # and nothing written into the checkout
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(case, world):
    if case.path_parameters:
        for name in case.path_parameters:
            if name in world["path"]:
                case.path_parameters[name] = world["path"][name]
    response = case.call(headers={"Authorization": f"Bearer {world['token']}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(response, checks=[response_schema_conformance])


@schema.parametrize()
@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_serves_an_anonymous_or_wrongly_authenticated_caller(
    case, in_process_requests
):
    # Without credentials, and with a token that is not one: refused before any view runs,
    # whatever the query and body, so no objects are needed behind the paths. Paths are made
    # to resolve (a malformed one is the catch-all's 404, before any authentication).
    for name in case.path_parameters or {}:
        case.path_parameters[name] = "search" if name == "slug" else 1
    for headers in ({}, {"Authorization": "Bearer gwt_not-a-token"}):
        response = case.call(headers=headers)
        assert response.status_code == 401, (case.method, case.formatted_path, response.text)


def _schema_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_schema_and_so_the_fuzzing_cover_every_operation_of_the_api():
    from api.urls import v1

    served = set()
    for pattern in v1:
        route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        view = pattern.callback.view_class
        for method in view.http_method_names:
            if method not in ("options", "head") and hasattr(view, method):
                served.add((method.upper(), f"/api/{route}"))
    assert served == _schema_operations()
