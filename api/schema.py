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
