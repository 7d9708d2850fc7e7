"""Data processing agreements: read by anyone with a role, written by compliance officers and
platform admins (api/roles.py) with a token's "admin" scope."""

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from compliance.models import DataProcessingAgreement
from compliance.services import agreement_create, agreement_update
from routing.models import Provider

from ..models import Scope
from ..pagination import Pagination, page_of
from ..roles import may_write_agreements, require_any_role
from .base import ApiView, StrictSerializer

STATUSES = DataProcessingAgreement.Status.values


class AgreementOutput(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField(source="provider.name")
    sub_processor = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUSES)
    standing = serializers.SerializerMethodField(help_text='e.g. "signed, expires in 20 days"')
    valid_today = serializers.SerializerMethodField(help_text="Signed and not expired today.")
    signed_on = serializers.DateField(allow_null=True)
    expires_on = serializers.DateField(allow_null=True)
    has_document = serializers.SerializerMethodField()
    document_url = serializers.CharField()
    retention_days = serializers.IntegerField(allow_null=True)
    zero_data_retention = serializers.BooleanField()
    training_opt_out = serializers.BooleanField()
    baa = serializers.BooleanField()
    baa_signed_on = serializers.DateField(allow_null=True)
    baa_expires_on = serializers.DateField(allow_null=True)
    scc = serializers.BooleanField()
    regions = serializers.ListField(child=serializers.CharField())
    sub_processors = serializers.ListField(child=serializers.CharField())
    owner = serializers.CharField()
    last_reviewed_on = serializers.DateField(allow_null=True)
    next_review_on = serializers.DateField(allow_null=True)
    notes = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_standing(self, obj) -> str:
        return obj.standing(timezone.now().date())

    def get_valid_today(self, obj) -> bool:
        return obj.dpa_valid_on(timezone.now().date())

    def get_has_document(self, obj) -> bool:
        return bool(obj.document)


class AgreementUpdateInput(StrictSerializer):
    sub_processor = serializers.CharField(max_length=200, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=STATUSES, required=False)
    signed_on = serializers.DateField(allow_null=True, required=False)
    expires_on = serializers.DateField(allow_null=True, required=False)
    document_url = serializers.URLField(max_length=500, allow_blank=True, required=False)
    retention_days = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, allow_null=True, required=False
    )
    zero_data_retention = serializers.BooleanField(required=False)
    training_opt_out = serializers.BooleanField(required=False)
    baa = serializers.BooleanField(required=False)
    baa_signed_on = serializers.DateField(allow_null=True, required=False)
    baa_expires_on = serializers.DateField(allow_null=True, required=False)
    scc = serializers.BooleanField(required=False)
    regions = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=50, required=False
    )
    sub_processors = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False
    )
    owner = serializers.EmailField(allow_blank=True, required=False)
    last_reviewed_on = serializers.DateField(allow_null=True, required=False)
    next_review_on = serializers.DateField(allow_null=True, required=False)
    notes = serializers.CharField(max_length=10_000, allow_blank=True, required=False)


class AgreementCreateInput(AgreementUpdateInput):
    provider = serializers.CharField(max_length=100, help_text="The provider's name.")


def _require_writer(user) -> None:
    if not may_write_agreements(user):
        raise PermissionDenied("only compliance officers and platform admins change agreements")


def _agreements():
    return DataProcessingAgreement.objects.select_related("provider").order_by(
        "provider__name", "sub_processor", "pk"
    )


class AgreementListApi(ApiView):
    write_scope = Scope.ADMIN

    @extend_schema(
        operation_id="agreements_list",
        responses=page_of(AgreementOutput),
        tags=["agreements"],
    )
    def get(self, request):
        require_any_role(request.user)
        paginator = Pagination()
        page = paginator.paginate_queryset(_agreements(), request, view=self)
        return paginator.get_paginated_response(AgreementOutput(page, many=True).data)

    @extend_schema(
        operation_id="agreements_create",
        request=AgreementCreateInput,
        responses={201: AgreementOutput},
        tags=["agreements"],
    )
    def post(self, request):
        _require_writer(request.user)
        data = AgreementCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        provider = Provider.objects.filter(name=values.pop("provider")).first()
        if provider is None:
            raise serializers.ValidationError({"provider": ["no provider with this name"]})
        agreement = agreement_create(provider=provider, actor=request.user, **values)
        return Response(AgreementOutput(agreement).data, status=status.HTTP_201_CREATED)


class AgreementDetailApi(ApiView):
    write_scope = Scope.ADMIN

    def _get(self, agreement_id: int) -> DataProcessingAgreement:
        found = _agreements().filter(pk=agreement_id).first()
        if found is None:
            raise Http404
        return found

    @extend_schema(
        operation_id="agreements_retrieve", responses=AgreementOutput, tags=["agreements"]
    )
    def get(self, request, agreement_id: int):
        require_any_role(request.user)
        return Response(AgreementOutput(self._get(agreement_id)).data)

    @extend_schema(
        operation_id="agreements_update",
        request=AgreementUpdateInput,
        responses=AgreementOutput,
        tags=["agreements"],
        description="Change the fields given; the others stay as they are.",
    )
    def patch(self, request, agreement_id: int):
        _require_writer(request.user)
        agreement = self._get(agreement_id)
        data = AgreementUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        agreement = agreement_update(agreement=agreement, actor=request.user, **data.validated_data)
        return Response(AgreementOutput(agreement).data)
