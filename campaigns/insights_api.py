"""Insights over the server API: what precedes the prediction target, and a playbook from one."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_base import TenantAPIView
from campaigns.api import _raise_400, playbook_data
from campaigns.api_schema import BAD_REQUEST, NOT_FOUND, PlaybookOutSerializer
from campaigns.conditions import ConditionError
from campaigns.insights import playbook_from_insight
from campaigns.rules import action_validate
from proactive.insights.service import insight_get, insight_run_latest, insights_of
from proactive.models import Insight


class InsightOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    condition = serializers.JSONField()
    text = serializers.CharField()
    customers = serializers.IntegerField()
    rate = serializers.FloatField()
    lift = serializers.FloatField()
    ci95 = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    q_value = serializers.FloatField()


class InsightListOutSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(allow_null=True)
    target = serializers.CharField()
    horizon_days = serializers.IntegerField()
    base_rate = serializers.FloatField(allow_null=True)
    results = InsightOutSerializer(many=True)


def insight_data(insight: Insight) -> dict[str, Any]:
    return {
        "id": str(insight.pk),
        "condition": insight.condition,
        "text": insight.text,
        "customers": insight.customers_now,
        "rate": insight.rate,
        "lift": insight.lift,
        "ci95": [insight.ci_low, insight.ci_high],
        "q_value": insight.q_value,
    }


class InsightListView(TenantAPIView):
    queryset = Insight.objects.none()
    pagination_class = None

    @extend_schema(operation_id="v1_insights_list", responses=InsightListOutSerializer)
    def get(self, request: Request) -> Response:
        tenant = self.tenant
        run = insight_run_latest(tenant=tenant)
        return Response(
            {
                "as_of": run.as_of.isoformat() if run else None,
                "target": run.target if run else tenant.prediction_target,
                "horizon_days": run.horizon_days if run else tenant.horizon_days,
                "base_rate": run.base_rate if run else None,
                "results": [insight_data(i) for i in insights_of(tenant=tenant, insight_run=run)],
            }
        )


class InsightPlaybookInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    action = serializers.JSONField(required=False)

    def validate_action(self, value: Any) -> dict[str, Any]:
        try:
            return action_validate(value, "action")
        except ConditionError as exc:
            raise serializers.ValidationError(str(exc)) from None


class InsightPlaybookView(TenantAPIView):
    queryset = Insight.objects.none()
    serializer_class = InsightPlaybookInputSerializer

    @extend_schema(
        request=InsightPlaybookInputSerializer,
        responses={201: PlaybookOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def post(self, request: Request, insight_id: str) -> Response:
        try:
            insight = insight_get(tenant=self.tenant, insight_id=insight_id)
        except Insight.DoesNotExist:
            raise Http404 from None
        serializer = InsightPlaybookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            playbook = playbook_from_insight(
                tenant=self.tenant,
                insight=insight,
                name=serializer.validated_data.get("name"),
                action=serializer.validated_data.get("action"),
            )
        except ConditionError as exc:
            _raise_400(exc)
        return Response(playbook_data(playbook), status=status.HTTP_201_CREATED)
