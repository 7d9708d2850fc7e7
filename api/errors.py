"""One error shape for every API error:

    {"error": {"status": 404, "code": "not_found", "message": "Not found.", "fields": null}}

`fields` maps input fields to their problems on a 400 ({"name": ["This field is required."]}),
else null. Django's ValidationError from a service (a limit above the team's, the last owner
removed) becomes a 400 of the same shape.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def as_drf(exc):
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return exceptions.ValidationError(detail)
    return exc


def _message(detail) -> str:
    if isinstance(detail, dict):
        for field, problems in detail.items():
            return f"{field}: {_message(problems)}"
    if isinstance(detail, list):
        return _message(detail[0]) if detail else "invalid input"
    return str(detail)


def exception_handler(exc, context):
    exc = as_drf(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a 500, logged by Django
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    fields = None
    if isinstance(exc, exceptions.ValidationError):
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        code = "invalid"
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else "error"
    response.data = {
        "error": {
            "status": response.status_code,
            "code": code,
            "message": _message(detail),
            "fields": fields,
        }
    }
    return response


def not_found_response() -> Response:
    """For /api/ paths that match no route: the same shape as every other error."""
    return Response(
        {
            "error": {
                "status": 404,
                "code": "not_found",
                "message": "no such API endpoint",
                "fields": None,
            }
        },
        status=status.HTTP_404_NOT_FOUND,
    )
