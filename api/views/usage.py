"""Usage and spend, from the daily rollups: totals over a period, filtered by team, project,
model and use case (the `use_case` tag), grouped by any of day, team, project, key, model,
provider and use case."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.analytics import Period, PeriodError
from tenants.roles import teams_in_scope

from ..pagination import Pagination
from ..scoping import team_for
from ..selectors import GROUPS, UsageFilter, usage_grand_total, usage_totals
from .base import ApiView


class UsageQuery(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="YYYY-MM-DD, inclusive (UTC day).")
    end = serializers.CharField(required=False, help_text="YYYY-MM-DD, inclusive (UTC day).")
    team = serializers.SlugField(required=False)
    project = serializers.SlugField(required=False)
    model = serializers.CharField(required=False, max_length=200)
    use_case = serializers.CharField(required=False, max_length=64)
    group_by = serializers.CharField(
        required=False,
        help_text=f"Comma-separated, any of: {', '.join(GROUPS)}. Empty: one total row.",
    )

    def validate_group_by(self, value: str) -> list[str]:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in GROUPS]
        if unknown:
            raise serializers.ValidationError(f"unknown: {', '.join(unknown)}")
        return list(dict.fromkeys(names))

    def validate(self, attrs):
        try:
            attrs["period"] = Period.parse(attrs.get("start"), attrs.get("end"))
        except PeriodError as exc:
            raise serializers.ValidationError({"start": [str(exc)]}) from exc
        return attrs


class UsageRow(serializers.Serializer):
    day = serializers.DateField(required=False)
    team = serializers.CharField(required=False, source="team_slug")
    project = serializers.CharField(required=False, allow_null=True, source="project__slug")
    key = serializers.CharField(required=False, source="key_prefix")
    model = serializers.CharField(required=False)
    provider = serializers.CharField(required=False, source="provider_name")
    use_case = serializers.CharField(required=False)
    requests = serializers.IntegerField(source="requests_sum")
    errors = serializers.IntegerField(source="errors_sum")
    input_tokens = serializers.IntegerField(source="input_tokens_sum")
    output_tokens = serializers.IntegerField(source="output_tokens_sum")
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=6, source="cost_sum")


class PeriodOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()


class TotalsOutput(serializers.Serializer):
    requests = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=6)


class UsageOutput(serializers.Serializer):
    period = PeriodOutput()
    group_by = serializers.ListField(child=serializers.CharField())
    totals = TotalsOutput(help_text="Over every row of the selection, not just this page.")
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = UsageRow(many=True)


class UsageApi(ApiView):
    @extend_schema(
        operation_id="usage_totals",
        parameters=[UsageQuery],
        responses=UsageOutput,
        tags=["usage"],
        description="Requests, errors, tokens and cost over a period (default: this month so "
        "far), in your teams, most expensive group first.",
    )
    def get(self, request):
        query = UsageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        teams = teams_in_scope(request.user)
        if "team" in q:
            teams = teams.filter(pk=team_for(request.user, q["team"]).pk)
        where = UsageFilter(
            period=q["period"],
            teams=teams,
            project=q.get("project"),
            model=q.get("model"),
            use_case=q.get("use_case"),
        )
        group_by = q.get("group_by", [])
        rows = usage_totals(where=where, group_by=group_by)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        fields = {"requests", "errors", "input_tokens", "output_tokens", "cost_usd", *group_by}
        results = [{k: v for k, v in UsageRow(row).data.items() if k in fields} for row in page]
        grand = usage_grand_total(where=where)
        response = paginator.get_paginated_response(results)
        response.data = {
            "period": {"start": q["period"].start, "end": q["period"].end},
            "group_by": group_by,
            "totals": TotalsOutput({"requests": grand["requests"], "cost_usd": grand["cost"]}).data,
            **response.data,
        }
        return response
