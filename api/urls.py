"""/api/: the management API (v1), its OpenAPI schema and its docs page."""

from django.urls import path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)

from .errors import not_found_response
from .views import agreements, health, key_actions, keys, members, teams, tokens, usage

TEAM = "v1/teams/<slug:slug>"
KEY = f"{TEAM}/keys/<int:key_id>"

v1 = [
    path("v1/me/", tokens.MeApi.as_view(), name="me"),
    path("v1/tokens/", tokens.TokenListApi.as_view(), name="tokens"),
    path("v1/tokens/<int:token_id>/", tokens.TokenDetailApi.as_view(), name="token"),
    path("v1/teams/", teams.TeamListApi.as_view(), name="teams"),
    path(f"{TEAM}/", teams.TeamDetailApi.as_view(), name="team"),
    path(f"{TEAM}/policy/", teams.TeamPolicyApi.as_view(), name="team-policy"),
    path(f"{TEAM}/members/", members.MemberListApi.as_view(), name="members"),
    path(f"{TEAM}/members/<int:member_id>/", members.MemberDetailApi.as_view(), name="member"),
    path(f"{TEAM}/keys/", keys.KeyListApi.as_view(), name="keys"),
    path(f"{KEY}/", keys.KeyDetailApi.as_view(), name="key"),
    path(f"{KEY}/rotate/", key_actions.KeyRotateApi.as_view(), name="key-rotate"),
    path(f"{KEY}/revoke/", key_actions.KeyRevokeApi.as_view(), name="key-revoke"),
    path(f"{KEY}/limits/", key_actions.KeyLimitsApi.as_view(), name="key-limits"),
    path("v1/usage/", usage.UsageApi.as_view(), name="usage"),
    path("v1/deployments/health/", health.DeploymentHealthApi.as_view(), name="health"),
    path("v1/agreements/", agreements.AgreementListApi.as_view(), name="agreements"),
    path(
        "v1/agreements/<int:agreement_id>/",
        agreements.AgreementDetailApi.as_view(),
        name="agreement",
    ),
]


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def unknown(request, path: str):
    return not_found_response()


app_name = "api"
urlpatterns = [
    *v1,
    # The schema and its docs page are public: they describe the API, not anyone's data. The
    # page's Swagger UI is served from this server (drf-spectacular-sidecar), never a CDN.
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api:schema"),
        name="docs",
    ),
    re_path(r"^(?P<path>.*)$", unknown),
]
