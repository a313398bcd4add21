"""Ingestion and customer profile endpoints of the public contract."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from accounts.api_auth import KeyPrincipal
from accounts.api_base import TenantAPIView
from accounts.api_parsers import MAX_JSON_DEPTH, _reject_constant, json_depth_exceeds, loads_limited
from accounts.rate_limits import FixedWindowLimiter
from proactive.features.compute import customer_features
from proactive.ingest import customers_upsert, signals_ingest
from proactive.ingest_rules import (
    MAX_BODY_BYTES,
    MAX_CUSTOMER_NAME,
    MAX_CUSTOMERS,
    MAX_EXTERNAL_ID,
    MAX_KEY,
    MAX_SIGNALS,
    NAME_PATTERN,
)
from proactive.models import Customer
from proactive.scoring.selectors import customer_risk


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request too large."
    default_code = "payload_too_large"


SERVER_KEY_LIMITER = FixedWindowLimiter("server-key")


class ServerKeyRateThrottle(BaseThrottle):
    """API_RATE_LIMIT_PER_MINUTE requests per server key and minute."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if not isinstance(request.user, KeyPrincipal):
            return True
        self._wait = SERVER_KEY_LIMITER.hit(request.user.key.prefix, int(settings.API_RATE_LIMIT_PER_MINUTE))
        return not self._wait

    def wait(self) -> float | None:
        return getattr(self, "_wait", 60.0)


def _raw_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > max_bytes:
        raise PayloadTooLarge(f"The body is over {max_bytes // (1024 * 1024)} MB.")
    body = request._request.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The body is over {max_bytes // (1024 * 1024)} MB.")
    return body


def _json_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    return loads_limited(_raw_body(request, max_bytes))


def _signals_depth_exceeds(data: Any, limit: int = MAX_JSON_DEPTH, field: str = "signals") -> bool:
    """`json_depth_exceeds` for a body of records, {field: [record, ...]}, walking only the
    containers inside records (most records are flat: the full walk took longer than parsing).
    A container at depth d is over the limit when d > limit, as there."""
    if not isinstance(data, dict) or limit < 3:  # records themselves are at depth 3
        return json_depth_exceeds(data, limit)
    for name, value in data.items():
        if name == field and isinstance(value, list):
            for rec in value:
                if isinstance(rec, dict):
                    for item in rec.values():
                        if isinstance(item, dict | list) and json_depth_exceeds(item, limit - 3):
                            return True
                elif isinstance(rec, list) and json_depth_exceeds(rec, limit - 2):
                    return True
        elif isinstance(value, dict | list) and json_depth_exceeds(value, limit - 1):
            return True
    return False


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


# orjson parses ~3x faster than json; it refuses what the standard parser accepts and the
# contract makes per-record errors (lone surrogates), and reads integers past 64 bits as floats,
# so such bodies (rare) go through the standard parser, with the same results as before.
_LONG_DIGITS = re.compile(rb"\d{20}")


def _loads_signals(body: bytes, field: str = "signals") -> Any:
    """`loads_limited` for a body of records (same errors, same depth limit, cheaper check)."""
    try:
        if _LONG_DIGITS.search(body):
            raise orjson.JSONDecodeError("long integer", "", 0)
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body, parse_constant=_reject_constant, parse_float=_finite)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
    if _signals_depth_exceeds(data, field=field):
        raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    return data


def _records(data: Any, field: str, limit: int) -> list:
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise ParseError(f'Expected a JSON object with a "{field}" list.')
    records = data[field]
    if len(records) > limit:
        raise PayloadTooLarge(f"At most {limit:,} {field} per request.")
    return records


class IngestView(TenantAPIView):
    throttle_classes = [ServerKeyRateThrottle]
    parser_classes: list = []  # the body is read once, size-checked, then parsed here


# The request serializers only describe the bodies in the schema: records are validated by
# proactive.ingest_rules (per record, reported by index), whose constants they are built from.
class SignalInSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=MAX_KEY)
    customer = serializers.CharField(max_length=MAX_EXTERNAL_ID)
    name = serializers.RegexField(NAME_PATTERN)
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField(required=False)


class SignalsBatchInSerializer(serializers.Serializer):
    signals = SignalInSerializer(many=True)


class SignalErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class SignalsBatchOutSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    # The metaclass moves declared fields into _declared_fields, so this does not replace
    # Serializer.errors; the stubs cannot tell a field from an override.
    errors = SignalErrorSerializer(many=True)  # type: ignore[assignment]


class SignalsBatchView(IngestView):
    @extend_schema(
        request={"application/json": SignalsBatchInSerializer},  # parser_classes is empty: name the type
        responses={
            200: SignalsBatchOutSerializer,
            400: OpenApiResponse(description="Malformed request"),
            413: OpenApiResponse(description="Over 10,000 signals or 10 MB"),
            429: OpenApiResponse(description="Rate limited; see Retry-After"),
        },
    )
    def post(self, request: Request) -> Response:
        body = _raw_body(request)
        records = _records(_loads_signals(body), "signals", MAX_SIGNALS)
        # JSON can only put a NUL in a string as the escape \u0000 (raw control characters are a
        # parse error), so a body without that text needs no per-record NUL walk.
        result = signals_ingest(tenant=self.tenant, records=records, nul_free=b"\\u0000" not in body)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
                "errors": result.errors,
            }
        )


class CustomerInSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=MAX_EXTERNAL_ID)
    name = serializers.CharField(required=False, max_length=MAX_CUSTOMER_NAME)
    email = serializers.EmailField(required=False)
    signed_up_at = serializers.DateTimeField(required=False)
    attributes = serializers.DictField(required=False)


class CustomersBatchInSerializer(serializers.Serializer):
    customers = CustomerInSerializer(many=True)


class CustomerErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    error = serializers.CharField()


class CustomersBatchOutSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    # The metaclass moves declared fields into _declared_fields, so this does not replace
    # Serializer.errors; the stubs cannot tell a field from an override.
    errors = CustomerErrorSerializer(many=True)  # type: ignore[assignment]


class CustomersBatchView(IngestView):
    @extend_schema(
        request={"application/json": CustomersBatchInSerializer},
        responses={
            200: CustomersBatchOutSerializer,
            400: OpenApiResponse(description="Malformed request"),
            413: OpenApiResponse(description="Over 10,000 customers or 10 MB"),
            429: OpenApiResponse(description="Rate limited; see Retry-After"),
        },
    )
    def post(self, request: Request) -> Response:
        records = _records(_json_body(request), "customers", MAX_CUSTOMERS)
        result = customers_upsert(tenant=self.tenant, records=records)
        return Response({"created": result.created, "updated": result.updated, "errors": result.errors})


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    contribution = serializers.FloatField()


class RiskSerializer(serializers.Serializer):
    score = serializers.FloatField()
    scored_at = serializers.DateTimeField()
    model_version = serializers.IntegerField(allow_null=True)
    rule_based = serializers.BooleanField()
    reasons = ReasonSerializer(many=True)


class CustomerProfileSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    signed_up_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    attributes = serializers.DictField()
    features = serializers.DictField(child=serializers.FloatField(allow_null=True))
    features_as_of = serializers.DateTimeField()
    risk = RiskSerializer(allow_null=True)


def customer_profile(*, customer: Customer) -> dict[str, Any]:
    """Profile, attributes, current features and the latest risk score (null before scoring)."""
    as_of = timezone.now()
    return {
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "signed_up_at": customer.signed_up_at,
        "created_at": customer.created_at,
        "attributes": customer.attributes,
        "features": customer_features(tenant=customer.tenant, customer_id=customer.pk, as_of=as_of),
        "features_as_of": as_of,
        "risk": customer_risk(customer.tenant, customer),
    }


class CustomerDetailView(TenantAPIView):
    queryset = Customer.objects.all()
    serializer_class = CustomerProfileSerializer

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("tenant")

    @extend_schema(responses={200: CustomerProfileSerializer, 404: OpenApiResponse(description="Unknown")})
    def get(self, request: Request, external_id: str) -> Response:
        customer = self.get_queryset().filter(external_id=external_id).first()
        if customer is None:
            raise Http404("No such customer.")
        return Response(CustomerProfileSerializer(customer_profile(customer=customer)).data)
