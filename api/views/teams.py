"""Teams: the caller's teams (every team for a platform admin), and the team's policy."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from billing.analytics import Period
from policies.models import Policy
from policies.services import team_limits_set
from tenants.roles import Action, role_of, teams_in_scope

from ..pagination import Pagination, page_of
from ..scoping import require, team_for
from ..selectors import team_spend
from .base import ApiView, StrictSerializer


class TeamOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    organization = serializers.CharField(source="organization.slug")
    cost_center = serializers.CharField()
    is_active = serializers.BooleanField()
    allowed_models = serializers.ListField(child=serializers.CharField())
    role = serializers.SerializerMethodField(help_text="Your role in the team.")

    def get_role(self, team) -> str | None:
        return role_of(self.context["user"], team)


class TeamListApi(ApiView):
    @extend_schema(operation_id="teams_list", responses=page_of(TeamOutput), tags=["teams"])
    def get(self, request):
        teams = teams_in_scope(request.user).select_related("organization").order_by("slug")
        paginator = Pagination()
        page = paginator.paginate_queryset(teams, request, view=self)
        data = TeamOutput(page, many=True, context={"user": request.user}).data
        return paginator.get_paginated_response(data)


class TeamDetailOutput(TeamOutput):
    monthly_budget_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, allow_null=True, help_text="The team's own budget."
    )
    spend_this_month_usd = serializers.DecimalField(
        max_digits=24, decimal_places=6, help_text="From the daily rollups (UTC days)."
    )


class TeamDetailApi(ApiView):
    @extend_schema(operation_id="teams_retrieve", responses=TeamDetailOutput, tags=["teams"])
    def get(self, request, slug: str):
        team = team_for(request.user, slug)
        policy = Policy.objects.filter(team=team).first()
        team.monthly_budget_usd = policy.monthly_budget_usd if policy else None
        team.spend_this_month_usd = team_spend(team=team, period=Period.current_month())
        return Response(TeamDetailOutput(team, context={"user": request.user}).data)


# --- The team's policy: its own limits, and the organization's ceilings ------------------------
class LimitsOutput(serializers.Serializer):
    rpm = serializers.IntegerField(allow_null=True)
    tpm = serializers.IntegerField(allow_null=True)
    monthly_budget_usd = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)


class TeamPolicyOutput(serializers.Serializer):
    team = LimitsOutput(help_text="The team's own limits; null: none set at this level.")
    organization = LimitsOutput(help_text="The ceilings the team's limits must stay within.")
    allowed_models = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The team policy's models."
    )
    budget_mode = serializers.CharField(allow_null=True)


def _limits(policy: Policy | None) -> dict:
    return {
        "rpm": policy.rpm if policy else None,
        "tpm": policy.tpm if policy else None,
        "monthly_budget_usd": policy.monthly_budget_usd if policy else None,
    }


def _policy_data(team) -> dict:
    policy = Policy.objects.filter(team=team).first()
    org = Policy.objects.filter(organization_id=team.organization_id).first()
    return {
        "team": _limits(policy),
        "organization": _limits(org),
        "allowed_models": policy.allowed_models if policy else None,
        "budget_mode": policy.budget_mode if policy else None,
    }


class TeamPolicyInput(StrictSerializer):
    rpm = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    tpm = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    monthly_budget_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, min_value=0, required=False
    )


class TeamPolicyApi(ApiView):
    @extend_schema(
        operation_id="teams_policy_retrieve", responses=TeamPolicyOutput, tags=["policy"]
    )
    def get(self, request, slug: str):
        team = team_for(request.user, slug)
        return Response(TeamPolicyOutput(_policy_data(team)).data)

    @extend_schema(
        operation_id="teams_policy_update",
        request=TeamPolicyInput,
        responses=TeamPolicyOutput,
        tags=["policy"],
        description="Set the team's RPM, TPM or monthly budget (owners; within the "
        "organization's). Fields left out are unchanged.",
    )
    def patch(self, request, slug: str):
        team = team_for(request.user, slug)
        require(request.user, Action.POLICY_EDIT, team)
        data = TeamPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team_limits_set(
            team=team,
            rpm=values.get("rpm"),
            tpm=values.get("tpm"),
            budget_usd=values.get("monthly_budget_usd"),
            actor=request.user,
        )
        return Response(TeamPolicyOutput(_policy_data(team)).data)
