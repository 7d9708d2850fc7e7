"""Personal access tokens: your own, listed, created (from a signed-in session only: a token
cannot mint tokens, so a leaked one cannot outlive its expiry) and revoked."""

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from tenants.roles import is_platform_admin, role_of, teams_in_scope

from ..models import SCOPES, PersonalAccessToken
from ..pagination import Pagination, page_of
from ..services import pat_create, pat_revoke
from .base import ApiView, StrictSerializer


class TokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES))
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    is_active = serializers.BooleanField()


class CreatedTokenOutput(TokenOutput):
    token = serializers.CharField(help_text="The token itself: shown in this response only.")


class TokenCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.MultipleChoiceField(choices=SCOPES, allow_empty=False)
    expires_in_days = serializers.IntegerField(min_value=1, help_text="Required; at most 365.")

    def validate_expires_in_days(self, value: int) -> int:
        if value > settings.GATEWAY_API_TOKEN_MAX_DAYS:
            raise serializers.ValidationError(f"at most {settings.GATEWAY_API_TOKEN_MAX_DAYS} days")
        return value


class TokenListApi(ApiView):
    session_only = True  # for unsafe methods; listing works with a token's read scope

    @extend_schema(operation_id="tokens_list", responses=page_of(TokenOutput), tags=["tokens"])
    def get(self, request):
        tokens = PersonalAccessToken.objects.filter(user=request.user).order_by(
            "-created_at", "-pk"
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(tokens, request, view=self)
        return paginator.get_paginated_response(TokenOutput(page, many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        request=TokenCreateInput,
        responses={201: CreatedTokenOutput},
        tags=["tokens"],
        description="Signed-in session only (with CSRF). The token is in this response only.",
    )
    def post(self, request):
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        issued = pat_create(
            user=request.user,
            name=values["name"],
            scopes=sorted(values["scopes"]),
            expires_in_days=values["expires_in_days"],
            actor=request.user,
        )
        # The token's output, plus the token itself: this response is the only time it exists.
        body = {**TokenOutput(issued.token).data, "token": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailApi(ApiView):
    session_only = True

    def _get(self, request, token_id: int) -> PersonalAccessToken:
        found = PersonalAccessToken.objects.filter(user=request.user, pk=token_id).first()
        if found is None:
            raise Http404
        return found

    @extend_schema(operation_id="tokens_retrieve", responses=TokenOutput, tags=["tokens"])
    def get(self, request, token_id: int):
        return Response(TokenOutput(self._get(request, token_id)).data)

    @extend_schema(operation_id="tokens_revoke", responses=TokenOutput, tags=["tokens"])
    def delete(self, request, token_id: int):
        token = pat_revoke(token=self._get(request, token_id), actor=request.user)
        return Response(TokenOutput(token).data)


class MeTeamOutput(serializers.Serializer):
    slug = serializers.SlugField()
    role = serializers.CharField()


class MeOutput(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    platform_admin = serializers.BooleanField()
    teams = MeTeamOutput(many=True)
    token = TokenOutput(allow_null=True, help_text="The token of this request; null: a session.")


class MeApi(ApiView):
    @extend_schema(operation_id="me", responses=MeOutput, tags=["tokens"])
    def get(self, request):
        user = request.user
        teams = teams_in_scope(user).order_by("slug")[:100]
        token = request.auth if isinstance(request.auth, PersonalAccessToken) else None
        return Response(
            MeOutput(
                {
                    "username": user.get_username(),
                    "email": user.email,
                    "platform_admin": is_platform_admin(user),
                    "teams": [{"slug": t.slug, "role": role_of(user, t)} for t in teams],
                    "token": token,
                }
            ).data
        )
