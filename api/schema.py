"""drf-spectacular: the personal access token as the schema's bearer security scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PersonalAccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.PersonalAccessTokenAuthentication"
    name = "personalAccessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (gwp_...), created at POST /api/v1/tokens/ "
            "from a signed-in session or with `manage.py createtoken`.",
        }


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message", "fields"],
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status, again."},
                "code": {
                    "type": "string",
                    "description": "invalid, parse_error, not_authenticated, "
                    "authentication_failed, permission_denied, not_found, "
                    "method_not_allowed, throttled, ...",
                },
                "message": {"type": "string", "description": "For people; may change."},
                "fields": {
                    "type": "object",
                    "nullable": True,
                    "additionalProperties": True,
                    "description": "On a 400: each input field and its problems.",
                },
            },
        }
    },
}
ERRORS = {
    "400": "Invalid input (fields says which).",
    "401": "No, an unknown, an expired or a revoked token.",
    "403": "Your role or your token's scopes do not allow this.",
    "404": "No such object among those you can see.",
    "429": "Too many requests; see Retry-After.",
}


def add_error_responses(result, generator, request, public):
    """Postprocessing hook: every operation documents the one error shape (api/errors.py)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(status, {"description": description, "content": ref})
    return result
