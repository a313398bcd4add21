"""`GET|PATCH /api/v1/tenant`: the tenant's settings as the contract shapes them."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_base import TenantAPIView
from accounts.models import (
    MAX_NUMERIC_PROPERTIES,
    NUMERIC_PROPERTY_PATTERN,
    NUMERIC_PROPERTY_RE,
    Tenant,
    default_monitoring,
)
from accounts.services import audit_record, tenant_update_settings

SIGNAL_PATTERN = re.compile(r"^[a-z0-9_.:-]{1,100}\*?$")
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class _PatternField(serializers.CharField):
    """A string matching `pattern`, refused with a message naming the value (DRF's RegexField only
    says "does not match the required pattern"); the schema publishes the pattern."""

    pattern: re.Pattern[str]
    message = "{value!r} is not valid"

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not self.pattern.match(value):
            raise serializers.ValidationError(self.message.format(value=value))
        return value


@extend_schema_field({"type": "string", "pattern": SIGNAL_PATTERN.pattern})
class SignalPatternField(_PatternField):
    pattern = SIGNAL_PATTERN
    message = "{value!r} is not a signal name or prefix ending in '*'"


@extend_schema_field({"type": "string", "pattern": ATTRIBUTE_KEY.pattern})
class AttributeKeyField(_PatternField):
    pattern = ATTRIBUTE_KEY
    message = "{value!r} is not an attribute key (1-100 characters of A-Z a-z 0-9 _ . -)"


@extend_schema_field({"type": "string", "pattern": NUMERIC_PROPERTY_PATTERN})
class NumericPropertyField(_PatternField):
    pattern = NUMERIC_PROPERTY_RE
    message = (
        "{value!r} is not SIGNAL.PROPERTY (a signal name, a dot, then 1-64 characters of A-Z a-z 0-9 _ -), "
        "e.g. purchase.amount"
    )


@extend_schema_field({"type": "string", "pattern": ORIGIN.pattern})
class OriginField(_PatternField):
    pattern = ORIGIN
    message = "{value!r} is not an origin like https://app.example.com"


@extend_schema_field({"type": "string", "enum": sorted(zoneinfo.available_timezones())})
class TimezoneField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"{value!r} is not an IANA time zone")
        return value


def _signal_patterns(value: list[str]) -> list[str]:
    for item in value:
        if not SIGNAL_PATTERN.match(item):
            raise serializers.ValidationError(f"{item!r} is not a signal name or prefix ending in '*'")
    return value


class PredictionSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=Tenant.Target.values)
    activity_signals = serializers.ListField(child=SignalPatternField(), min_length=1, max_length=50)
    horizon_days = serializers.IntegerField(min_value=1, max_value=365)
    numeric_properties = serializers.ListField(
        child=NumericPropertyField(),
        max_length=MAX_NUMERIC_PROPERTIES,
        required=False,
        help_text="Numeric signal properties the risk model sums and averages per window, as "
        "SIGNAL.PROPERTY (e.g. purchase.amount); JSON numbers only.",
    )

    def validate_numeric_properties(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each property may be declared once.")
        return value

    def validate_activity_signals(self, value: list[str]) -> list[str]:
        return _signal_patterns(value)


class BudgetSerializer(serializers.Serializer):
    max_messages = serializers.IntegerField(min_value=0, max_value=100)
    per_days = serializers.IntegerField(min_value=1, max_value=365)


class MonitoringSerializer(serializers.Serializer):
    signals = serializers.ListField(child=SignalPatternField(), max_length=50)
    segment_by = serializers.ListField(
        child=AttributeKeyField(), max_length=20, allow_null=True, allow_empty=True
    )
    auto_open = serializers.BooleanField()

    def validate_signals(self, value: list[str]) -> list[str]:
        return _signal_patterns(value)

    def validate_segment_by(self, value: list[str] | None) -> list[str] | None:
        for key in value or []:
            if not ATTRIBUTE_KEY.match(key):
                raise serializers.ValidationError(
                    f"{key!r} is not an attribute key (1-100 characters of A-Z a-z 0-9 _ . -)"
                )
        return value

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown setting."] for name in unknown})
        return super().to_internal_value(data)


class TenantSettingsSerializer(serializers.Serializer):
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(max_length=200)
    timezone = TimezoneField()
    contact_signals = serializers.ListField(child=SignalPatternField(), min_length=1, max_length=50)
    prediction = PredictionSerializer()
    contact_budget = BudgetSerializer()
    allowed_origins = serializers.ListField(child=OriginField(), max_length=50)
    monitoring = MonitoringSerializer()

    def validate_timezone(self, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"{value!r} is not an IANA time zone")
        return value

    def validate_contact_signals(self, value: list[str]) -> list[str]:
        return _signal_patterns(value)

    def validate_allowed_origins(self, value: list[str]) -> list[str]:
        for origin in value:
            if not ORIGIN.match(origin):
                raise serializers.ValidationError(f"{origin!r} is not an origin like https://app.example.com")
        return value


def tenant_settings(tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "timezone": tenant.timezone,
        "contact_signals": tenant.contact_signals,
        "prediction": {
            "target": tenant.prediction_target,
            "activity_signals": tenant.activity_signals,
            "horizon_days": tenant.horizon_days,
            "numeric_properties": tenant.numeric_properties,
        },
        "contact_budget": {"max_messages": tenant.budget_max_messages, "per_days": tenant.budget_per_days},
        "allowed_origins": tenant.allowed_origins,
        "monitoring": {**default_monitoring(), **tenant.monitoring},
    }


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


class TenantSettingsView(TenantAPIView):
    serializer_class = TenantSettingsSerializer

    @extend_schema(responses=TenantSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(tenant_settings(self.tenant))

    @extend_schema(
        request=TenantSettingsSerializer,
        responses={200: TenantSettingsSerializer, 400: OpenApiResponse(description="Invalid settings")},
    )
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(request.data) - set(TenantSettingsSerializer().fields) - {"slug"})
        if unknown:
            raise serializers.ValidationError({name: ["Unknown setting."] for name in unknown})
        current = tenant_settings(self.tenant)
        serializer = TenantSettingsSerializer(data=_merge(current, request.data))
        serializer.is_valid(raise_exception=True)
        tenant = tenant_update_settings(tenant=self.tenant, data=serializer.validated_data)
        audit_record(
            tenant=tenant, actor=None, action="tenant.settings_api", target=tenant, data=request.data
        )
        return Response(tenant_settings(tenant))
