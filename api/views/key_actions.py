"""Actions on one key: rotate, revoke, limits. A member acts on the keys they own, a lead (and
up) on any key of the team (tenants.roles: KEY_MANAGE_OWN with the key)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from policies.models import Policy
from tenants.roles import Action
from tenants.services import api_key_limits_set, api_key_revoke, api_key_rotate

from ..models import Scope
from ..scoping import key_for, require, team_for
from .base import ApiView, StrictSerializer
from .keys import IssuedKeyOutput, KeyOutput, issued_data


def _managed_key(request, slug: str, key_id: int):
    team = team_for(request.user, slug)
    key = key_for(team, key_id)
    require(request.user, Action.KEY_MANAGE_OWN, team, key=key)
    return key


class KeyRotateInput(StrictSerializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        default=0,
        help_text="How long the old secret keeps working; 0: revoked at once.",
    )

    def validate_grace_seconds(self, value: int) -> int:
        limit = settings.GATEWAY_API_MAX_GRACE_S
        if value > limit:
            raise serializers.ValidationError(f"at most {limit} seconds")
        return value


class KeyRotateApi(ApiView):
    write_scope = Scope.KEYS

    @extend_schema(
        operation_id="keys_rotate",
        request=KeyRotateInput,
        responses={201: IssuedKeyOutput},
        tags=["keys"],
        description="A new key with a new secret (same name, owner, project, models, expiry "
        "and limits); the old one works for grace_seconds more. The secret is shown once.",
    )
    def post(self, request, slug: str, key_id: int):
        key = _managed_key(request, slug, key_id)
        data = KeyRotateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = api_key_rotate(
            api_key=key, grace_seconds=data.validated_data["grace_seconds"], actor=request.user
        )
        return Response(issued_data(issued), status=status.HTTP_201_CREATED)


class EmptyInput(StrictSerializer):
    pass


class KeyRevokeApi(ApiView):
    write_scope = Scope.KEYS

    @extend_schema(
        operation_id="keys_revoke", request=EmptyInput, responses=KeyOutput, tags=["keys"]
    )
    def post(self, request, slug: str, key_id: int):
        key = _managed_key(request, slug, key_id)
        EmptyInput(data=request.data or {}).is_valid(raise_exception=True)
        return Response(KeyOutput(api_key_revoke(api_key=key, actor=request.user)).data)


class KeyLimitsOutput(serializers.Serializer):
    rpm = serializers.IntegerField(allow_null=True)
    tpm = serializers.IntegerField(allow_null=True)
    monthly_budget_usd = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)


class KeyLimitsInput(StrictSerializer):
    rpm = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    tpm = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    monthly_budget_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, min_value=0, required=False
    )


def _limits(key) -> dict:
    policy = Policy.objects.filter(api_key=key).first()
    return {
        "rpm": policy.rpm if policy else None,
        "tpm": policy.tpm if policy else None,
        "monthly_budget_usd": policy.monthly_budget_usd if policy else None,
    }


class KeyLimitsApi(ApiView):
    write_scope = Scope.KEYS

    @extend_schema(operation_id="keys_limits_retrieve", responses=KeyLimitsOutput, tags=["keys"])
    def get(self, request, slug: str, key_id: int):
        team = team_for(request.user, slug)
        return Response(KeyLimitsOutput(_limits(key_for(team, key_id))).data)

    @extend_schema(
        operation_id="keys_limits_update",
        request=KeyLimitsInput,
        responses=KeyLimitsOutput,
        tags=["keys"],
        description="The key's own RPM, TPM and monthly budget, within the team's. Fields left "
        "out are unchanged.",
    )
    def patch(self, request, slug: str, key_id: int):
        key = _managed_key(request, slug, key_id)
        data = KeyLimitsInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        api_key_limits_set(
            api_key=key,
            rpm=values.get("rpm"),
            tpm=values.get("tpm"),
            budget_usd=values.get("monthly_budget_usd"),
            actor=request.user,
        )
        return Response(KeyLimitsOutput(_limits(key)).data)
