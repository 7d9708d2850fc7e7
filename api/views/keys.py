"""A team's API keys: list and read (viewer+), create (member+, owned by the caller).

The secret is in the create (and rotate) response only; it is stored as a hash and no other
response carries it.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from billing.analytics import Period
from tenants.models import ApiKey, Project
from tenants.roles import Action
from tenants.services import api_key_issue

from ..models import Scope
from ..pagination import Pagination, page_of
from ..scoping import key_for, require, team_for
from ..selectors import keys_spend
from .base import ApiView, StrictSerializer

MAX_KEY_DAYS = 3650


class KeyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The secret's first characters, to recognise it.")
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
    project = serializers.CharField(source="project.slug", allow_null=True, default=None)
    allowed_models = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    is_active = serializers.BooleanField()
    spend_this_month_usd = serializers.DecimalField(
        max_digits=24, decimal_places=6, required=False, help_text="From the daily rollups."
    )


class IssuedKeyOutput(KeyOutput):
    secret = serializers.CharField(
        help_text="The key itself: shown in this response only, never again."
    )


def issued_data(issued) -> dict:
    # The output of the key, plus the secret that exists only in this response.
    return {**KeyOutput(issued.api_key).data, "secret": issued.secret}


class KeyCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    project = serializers.SlugField(required=False, help_text="A project of the team, by slug.")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=MAX_KEY_DAYS, required=False)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=100,
        required=False,
        help_text="Narrows the team's models for this key; empty: as the team.",
    )


class KeyListApi(ApiView):
    write_scope = Scope.KEYS

    @extend_schema(
        operation_id="keys_list",
        parameters=[
            OpenApiParameter("active", bool, description="Only active (or only inactive) keys."),
            OpenApiParameter("mine", bool, description="Only keys you own."),
        ],
        responses=page_of(KeyOutput),
        tags=["keys"],
    )
    def get(self, request, slug: str):
        team = team_for(request.user, slug)
        keys = ApiKey.objects.filter(team=team).select_related("owner", "project")
        keys = keys.order_by("-created_at", "-pk")
        active = _flag(request.query_params.get("active"), "active")
        if active is not None:
            keys = keys.active() if active else keys.exclude(pk__in=keys.active())
        if _flag(request.query_params.get("mine"), "mine"):
            keys = keys.filter(owner=request.user)
        paginator = Pagination()
        page = paginator.paginate_queryset(keys, request, view=self)
        spend = keys_spend(keys=page, period=Period.current_month())
        for key in page:
            key.spend_this_month_usd = spend.get(key.pk, 0)
        return paginator.get_paginated_response(KeyOutput(page, many=True).data)

    @extend_schema(
        operation_id="keys_create",
        request=KeyCreateInput,
        responses={201: IssuedKeyOutput},
        tags=["keys"],
        description="Create a key owned by you. The response holds its secret, the only time.",
    )
    def post(self, request, slug: str):
        team = team_for(request.user, slug)
        require(request.user, Action.KEY_CREATE_OWN, team)
        data = KeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = None
        if "project" in values:
            project = Project.objects.filter(team=team, slug=values["project"]).first()
            if project is None:
                raise serializers.ValidationError({"project": ["no such project in this team"]})
        issued = api_key_issue(
            team=team,
            name=values["name"],
            owner=request.user,
            project=project,
            expires_in_days=values.get("expires_in_days"),
            allowed_models=values.get("allowed_models"),
            actor=request.user,
        )
        return Response(issued_data(issued), status=status.HTTP_201_CREATED)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise serializers.ValidationError({name: ["true or false"]})


class KeyDetailApi(ApiView):
    write_scope = Scope.KEYS

    @extend_schema(operation_id="keys_retrieve", responses=KeyOutput, tags=["keys"])
    def get(self, request, slug: str, key_id: int):
        team = team_for(request.user, slug)
        key = key_for(team, key_id)
        key.spend_this_month_usd = keys_spend(keys=[key], period=Period.current_month()).get(
            key.pk, 0
        )
        return Response(KeyOutput(key).data)
