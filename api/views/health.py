"""Deployments' health: each enabled deployment's live breaker state (shared by every web
process) and its last active check. For anyone with a role: teams choose models by it."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from routing.models import Deployment

from ..pagination import Pagination, page_of
from ..roles import require_any_role
from ..selectors import deployments_health
from .base import ApiView


class DeploymentHealthOutput(serializers.Serializer):
    id = serializers.IntegerField(source="deployment.pk")
    model = serializers.CharField(source="deployment.model_name", help_text="Public name.")
    provider = serializers.CharField(source="deployment.provider.name")
    region = serializers.CharField(source="deployment.region")
    state = serializers.ChoiceField(
        choices=["closed", "open", "half_open", "cooling", "unknown"],
        help_text="closed: healthy; open/half_open: its breaker tripped; cooling: after a "
        "provider 429; unknown: the shared state is unreachable.",
    )
    usable = serializers.BooleanField(allow_null=True)
    retry_in_s = serializers.FloatField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True, help_text="EWMA of recent calls.")
    consecutive_failures = serializers.IntegerField(allow_null=True)
    last_check_at = serializers.DateTimeField(allow_null=True)
    last_ok_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()


class DeploymentHealthApi(ApiView):
    @extend_schema(
        operation_id="deployments_health",
        responses=page_of(DeploymentHealthOutput),
        tags=["deployments"],
    )
    def get(self, request):
        require_any_role(request.user)
        deployments = (
            Deployment.objects.filter(enabled=True, provider__enabled=True)
            .select_related("provider")
            .order_by("model_name", "pk")
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(deployments, request, view=self)
        rows = deployments_health(list(page))
        return paginator.get_paginated_response(DeploymentHealthOutput(rows, many=True).data)
