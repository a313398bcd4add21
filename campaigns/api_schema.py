"""Response shapes of the campaigns API, for the OpenAPI schema only.

The views build their payloads as plain dicts (`playbook_data`, `effectiveness`, ...);
these serializers describe those dicts so that `/api/schema/` is complete and the
schemathesis run in tests/test_api_fuzz.py can check every response against it.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from campaigns.models import Campaign, Incident, Outreach


class PlaybookOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    trigger = serializers.JSONField()
    trigger_text = serializers.CharField()
    action = serializers.DictField()
    cooldown_days = serializers.IntegerField()
    holdout_percent = serializers.IntegerField()
    review_expiry_hours = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PreviewOutSerializer(serializers.Serializer):
    matching = serializers.IntegerField()
    sample = serializers.ListField(child=serializers.CharField())


class ArmSerializer(serializers.Serializer):
    customers = serializers.IntegerField()
    contacted = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class EngagementSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    seen = serializers.IntegerField()
    clicked = serializers.IntegerField()
    dismissed = serializers.IntegerField()
    helpful = serializers.IntegerField()
    not_helpful = serializers.IntegerField()


class ReachedSerializer(serializers.Serializer):
    customers = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class EffectOnReachedSerializer(serializers.Serializer):
    absolute_reduction = serializers.FloatField()
    relative_reduction = serializers.FloatField()
    ci95 = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)


class EffectivenessOutSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    treated = ArmSerializer()
    holdout = ArmSerializer()
    relative_reduction = serializers.FloatField(allow_null=True)
    ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    p_value = serializers.FloatField(allow_null=True)
    backfiring = serializers.BooleanField()
    engagement = EngagementSerializer()
    reached = ReachedSerializer()
    effect_on_reached = EffectOnReachedSerializer(allow_null=True)


class BacktestDaySerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    matched = serializers.IntegerField()
    contacted = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True)
    customers = serializers.IntegerField()
    base_rate = serializers.FloatField(allow_null=True)
    complete = serializers.BooleanField()


class BacktestOutSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    days = BacktestDaySerializer(many=True)
    matched = serializers.IntegerField()
    contacted = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True)
    base_rate = serializers.FloatField(allow_null=True)


class OutreachOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    customer = serializers.CharField()
    playbook = serializers.UUIDField(allow_null=True)
    campaign = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=Outreach.Status.values)
    holdout = serializers.BooleanField()
    triggered_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    title = serializers.CharField(allow_blank=True)


class CampaignOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    audience = serializers.JSONField()
    audience_text = serializers.CharField()
    action = serializers.DictField()
    send_at = serializers.DateTimeField()
    holdout_percent = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Campaign.Status.values)
    sent_at = serializers.DateTimeField(allow_null=True)
    audience_size = serializers.IntegerField(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField())


class DetectionSerializer(serializers.Serializer):
    signal = serializers.CharField()
    segment = serializers.DictField(allow_null=True)
    started_at = serializers.DateTimeField()
    detected_at = serializers.DateTimeField()
    customers_affected = serializers.IntegerField()
    expected = serializers.FloatField()
    observed = serializers.FloatField()
    p_value = serializers.FloatField()


class IncidentOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    component = serializers.CharField()
    title = serializers.CharField()
    affected = serializers.JSONField()
    affected_text = serializers.CharField()
    notice = serializers.DictField()
    follow_up = serializers.DictField(allow_null=True)
    overrides_budget = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Incident.Status.values)
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    detection = DetectionSerializer(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


BAD_REQUEST = OpenApiResponse(description="Invalid input; the body names the bad field or condition part")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object in this tenant")
CONFLICT = OpenApiResponse(ErrorSerializer, description="The incident is not open")
NOT_SUSPECTED = OpenApiResponse(ErrorSerializer, description="The incident is not suspected")
TOO_MANY = OpenApiResponse(
    ErrorSerializer, description="The tenant's budget for this minute is spent; see Retry-After"
)
