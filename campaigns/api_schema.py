"""Response shapes of the campaigns API, for the OpenAPI schema only.

The views build their payloads as plain dicts (`playbook_data`, `effectiveness`, ...);
these serializers describe those dicts so that `/api/schema/` is complete and the
schemathesis run in tests/test_api_fuzz.py can check every response against it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from campaigns.conditions import MAX_DEPTH, MAX_LEAVES, MAX_LIST, MAX_NUMBER, NUMERIC_OPS
from campaigns.models import Campaign, Incident, Outreach
from campaigns.rules import (
    CTA_URL_MAX,
    CTA_URL_PATTERN,
    NON_BLANK_PATTERN,
    PRIORITIES,
    TEXT_LIMITS,
)
from proactive.features.metrics import ATTRIBUTE_METRIC_PATTERN, NUMERIC_METRIC_PATTERN

# ---- the condition and action grammar (request bodies) ------------------------------------------
# campaigns.conditions.parse_condition and campaigns.rules.action_validate, as JSON Schema: the
# components `Condition` (with its deeper levels `ConditionDepthN`) and `Action`, added by
# `add_grammar_components`. One limit is over the whole tree and only described: at most
# MAX_LEAVES comparisons.

_REF = "#/components/schemas/"
_NUMBER = {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}
_SCALAR = {"anyOf": [{"type": "string"}, {"type": "boolean"}, _NUMBER], "nullable": True}
_NUMERIC_METRIC = {"type": "string", "pattern": NUMERIC_METRIC_PATTERN}
_ATTRIBUTE_METRIC = {"type": "string", "pattern": ATTRIBUTE_METRIC_PATTERN}


def _leaf(metric: dict[str, Any], ops: list[str], value: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"metric": metric, "op": {"type": "string", "enum": ops}}
    if value is not None:
        properties["value"] = value
    return {
        "type": "object",
        "properties": properties,
        "required": ["metric", "op", "value"]
        if value is not None and ops != ["exists"]
        else ["metric", "op"],
        "additionalProperties": False,
    }


def _group(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: item}, "required": [key], "additionalProperties": False}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_LIST}


_LEAVES: list[dict[str, Any]] = [
    _leaf(_NUMERIC_METRIC, list(NUMERIC_OPS), _NUMBER),
    _leaf(_ATTRIBUTE_METRIC, ["lt", "lte", "gt", "gte"], _NUMBER),
    _leaf(_ATTRIBUTE_METRIC, ["eq", "neq"], _SCALAR),
    _leaf(_NUMERIC_METRIC, ["in", "not_in"], _list_of(_NUMBER)),
    _leaf(_ATTRIBUTE_METRIC, ["in", "not_in"], _list_of(_SCALAR)),
    _leaf(
        {"anyOf": [_NUMERIC_METRIC, _ATTRIBUTE_METRIC]},
        ["exists"],
        {"type": "boolean", "nullable": True, "description": "default true"},
    ),
]


def _depth_name(depth: int) -> str:
    return "Condition" if depth == 0 else f"ConditionDepth{depth}"


def _condition_at(depth: int) -> dict[str, Any]:
    """The grammar at one nesting depth: groups whose members are one level deeper, or a leaf.
    Unrolled rather than recursive, so that the schema itself says "at most MAX_DEPTH levels":
    the deepest level is a leaf only."""
    if depth == MAX_DEPTH:
        return {
            "description": f"a leaf {{metric, op, value}} (nesting depth {MAX_DEPTH}, the deepest)",
            "anyOf": _LEAVES,
        }
    child = {"$ref": _REF + _depth_name(depth + 1)}
    members = {"type": "array", "items": child, "minItems": 1, "maxItems": MAX_LEAVES}
    return {
        "description": (
            "{all: [...]}, {any: [...]}, {not: cond} or a leaf {metric, op, value}; at most "
            f"{MAX_DEPTH} levels of nesting and {MAX_LEAVES} comparisons in all."
        ),
        "anyOf": [_group("all", members), _group("any", members), _group("not", child), *_LEAVES],
    }


CONDITION_SCHEMAS: dict[str, dict[str, Any]] = {
    _depth_name(d): _condition_at(d) for d in range(MAX_DEPTH + 1)
}

# Not published as `not: {pattern: UNKNOWN_VARIABLE_PATTERN}`: generators (schemathesis) need its
# lookahead for negative data and slow to a crawl, so the rule is only described.
_VARIABLES = (
    "Variables: {{ customer.name|first_name|email|external_id|attributes.KEY }}; any other "
    "customer.X is a 400 (the pattern of one: campaigns.rendering.UNKNOWN_VARIABLE_PATTERN)."
)
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "channel": {"type": "string", "enum": Outreach.Channel.values, "default": "in_app"},
        "title": {
            "type": "string",
            "maxLength": TEXT_LIMITS["title"],
            "pattern": NON_BLANK_PATTERN,
            "description": _VARIABLES,
        },
        "body": {
            "type": "string",
            "maxLength": TEXT_LIMITS["body"],
            "description": "Markdown. " + _VARIABLES,
        },
        "cta_label": {"type": "string", "maxLength": TEXT_LIMITS["cta_label"], "description": _VARIABLES},
        "cta_url": {
            "type": "string",
            "maxLength": CTA_URL_MAX,
            "anyOf": [{"maxLength": 0}, {"pattern": CTA_URL_PATTERN}],
        },
        "requires_review": {"type": "boolean", "default": False},
        "priority": {"type": "string", "enum": list(PRIORITIES), "default": "normal"},
    },
    "required": ["title"],
    "additionalProperties": False,
    "anyOf": [
        {
            "description": "no call to action",
            "properties": {"cta_label": {"maxLength": 0}, "cta_url": {"maxLength": 0}},
        },
        {
            "description": "cta_label and cta_url go together",
            "properties": {"cta_label": {"minLength": 1}, "cta_url": {"minLength": 1}},
            "required": ["cta_label", "cta_url"],
        },
    ],
}


def add_grammar_components(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the `Condition` and `Action` components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(CONDITION_SCHEMAS)
    schemas["Action"] = ACTION_SCHEMA
    return result


@extend_schema_field({"$ref": _REF + "Condition"})
class ConditionField(serializers.JSONField):
    pass


@extend_schema_field({"$ref": _REF + "Action"})
class ActionField(serializers.JSONField):
    pass


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
NAME_TAKEN = OpenApiResponse(ErrorSerializer, description="Another playbook of the tenant has this name")
NOT_SUSPECTED = OpenApiResponse(ErrorSerializer, description="The incident is not suspected")
TOO_MANY = OpenApiResponse(
    ErrorSerializer, description="The tenant's budget for this minute is spent; see Retry-After"
)
