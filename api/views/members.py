"""A team's members: list (viewer+), add, change a role, remove. Who may move whom from which
role to which is tenants.roles.may_set_role: leads handle members and viewers and appoint
leads, owners handle owners and demote leads, anyone may step down or leave."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from tenants.models import Membership
from tenants.roles import Action, may_set_role
from tenants.services import membership_add, membership_remove, membership_role_set

from ..pagination import Pagination, page_of
from ..scoping import membership_for, require, team_for
from .base import ApiView, StrictSerializer

ROLES = Membership.Role.values


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email")
    role = serializers.ChoiceField(choices=ROLES)
    created_at = serializers.DateTimeField()


class MemberAddInput(StrictSerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=ROLES, default=Membership.Role.MEMBER)


class MemberRoleInput(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)


def _require_move(user, team, *, current, new, target=None) -> None:
    if not may_set_role(user, team, current=current, new=new, target=target):
        raise PermissionDenied(f"your role in team '{team.slug}' does not allow this")


class MemberListApi(ApiView):
    @extend_schema(operation_id="members_list", responses=page_of(MemberOutput), tags=["members"])
    def get(self, request, slug: str):
        team = team_for(request.user, slug)
        members = Membership.objects.filter(team=team).select_related("user").order_by("pk")
        paginator = Pagination()
        page = paginator.paginate_queryset(members, request, view=self)
        return paginator.get_paginated_response(MemberOutput(page, many=True).data)

    @extend_schema(
        operation_id="members_add",
        request=MemberAddInput,
        responses={201: MemberOutput},
        tags=["members"],
    )
    def post(self, request, slug: str):
        team = team_for(request.user, slug)
        require(request.user, Action.MEMBERS_MANAGE, team)
        data = MemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        _require_move(request.user, team, current=None, new=role)
        user = (
            get_user_model()
            .objects.filter(username=data.validated_data["username"], is_active=True)
            .first()
        )
        if user is None:
            raise serializers.ValidationError({"username": ["no active user with this name"]})
        membership = membership_add(team=team, user=user, role=role, actor=request.user)
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(ApiView):
    @extend_schema(operation_id="members_retrieve", responses=MemberOutput, tags=["members"])
    def get(self, request, slug: str, member_id: int):
        team = team_for(request.user, slug)
        return Response(MemberOutput(membership_for(team, member_id)).data)

    @extend_schema(
        operation_id="members_role_set",
        request=MemberRoleInput,
        responses=MemberOutput,
        tags=["members"],
    )
    def patch(self, request, slug: str, member_id: int):
        team = team_for(request.user, slug)
        membership = membership_for(team, member_id)
        data = MemberRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        _require_move(request.user, team, current=membership.role, new=role, target=membership.user)
        membership = membership_role_set(membership=membership, role=role, actor=request.user)
        return Response(MemberOutput(membership).data)

    @extend_schema(operation_id="members_remove", responses={204: None}, tags=["members"])
    def delete(self, request, slug: str, member_id: int):
        team = team_for(request.user, slug)
        membership = membership_for(team, member_id)
        _require_move(request.user, team, current=membership.role, new=None, target=membership.user)
        membership_remove(membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
