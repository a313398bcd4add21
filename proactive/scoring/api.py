"""`GET /api/v1/scores` and `GET /api/v1/models` as the contract shapes them."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_base import ContractCursorPagination, KeysetPagination, QuerySerializer, TenantAPIView
from proactive.models import RiskModel, RiskScore
from proactive.scoring.selectors import model_as_contract


@extend_schema_serializer(component_name="ScoreReason")
class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    contribution = serializers.FloatField()


class ScoreOutputSerializer(serializers.Serializer):
    customer = serializers.CharField(source="customer.external_id")
    score = serializers.FloatField()
    scored_at = serializers.DateTimeField()
    model_version = serializers.IntegerField(source="model.version", allow_null=True, default=None)
    reasons = ReasonSerializer(many=True)


class ScorePagination(KeysetPagination):
    key_field = "score"


class ScoreListView(TenantAPIView):
    """The tenant's customers, riskiest first."""

    queryset = RiskScore.objects.all()
    serializer_class = ScoreOutputSerializer
    pagination_class = ScorePagination  # keyset, not DRF's cursor

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("customer", "model").only(
            "id", "score", "scored_at", "reasons", "customer__external_id", "model__version"
        )

    @extend_schema(operation_id="v1_scores_list", responses=ScoreOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ScoreOutputSerializer(page, many=True).data)


@extend_schema_serializer(component_name="BaselineMetrics")
class BaselineMetricsSerializer(serializers.Serializer):
    """A baseline fitted in the same training run, measured on the same validation rows."""

    auc = serializers.FloatField(allow_null=True)
    pr_auc = serializers.FloatField(allow_null=True)
    brier = serializers.FloatField(allow_null=True)
    calibration_error = serializers.FloatField(allow_null=True)
    distinct_scores = serializers.IntegerField(allow_null=True)


class ModelMetricsSerializer(serializers.Serializer):
    auc = serializers.FloatField(allow_null=True)
    pr_auc = serializers.FloatField(allow_null=True)
    brier = serializers.FloatField(allow_null=True)
    base_rate = serializers.FloatField(allow_null=True)
    baselines = serializers.DictField(child=BaselineMetricsSerializer())


class ModelOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    trained_at = serializers.DateTimeField()
    as_of = serializers.DateTimeField()
    horizon_days = serializers.IntegerField()
    training_rows = serializers.IntegerField()
    active = serializers.BooleanField()
    metrics = ModelMetricsSerializer()
    feature_importance = serializers.DictField(child=serializers.FloatField())
    notes = serializers.CharField()


class ModelPagination(ContractCursorPagination):
    ordering = "-version"


class ModelQuerySerializer(QuerySerializer):
    """`?active=true|false` (or 1|0, which earlier clients sent); anything else is a 400."""

    active = serializers.ChoiceField(choices=["true", "false", "1", "0"], required=False)

    def validate_active(self, value: str) -> bool:
        return value in ("true", "1")


class ModelListView(TenantAPIView):
    """Every model version, newest first; `?active=true` keeps only the active one."""

    queryset = RiskModel.objects.all()
    serializer_class = ModelOutputSerializer
    pagination_class = ModelPagination

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        query = ModelQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data.get("active"):
            queryset = queryset.filter(status=RiskModel.Status.ACTIVE)
        return queryset.defer("booster")

    @extend_schema(
        operation_id="v1_models_list",
        parameters=[
            OpenApiParameter("active", bool, required=False, description="true: only the active model")
        ],
        responses=ModelOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        data = [model_as_contract(m) for m in page]
        return self.get_paginated_response(ModelOutputSerializer(data, many=True).data)
