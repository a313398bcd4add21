"""`POST /ingest/segment/v1/{batch,track,identify,page,screen}`: the Segment-compatible source.

Auth, rate limit, body limits and parsing are the signals batch API's; a gzip body (the
libraries' default) is inflated up to the same 10 MB, so a small compressed bomb is a 413.
"""

from __future__ import annotations

import zlib
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_auth import WriteKeyAuthentication
from proactive.api import IngestView, PayloadTooLarge, SignalErrorSerializer, _loads_signals, _raw_body
from proactive.ingest_rules import MAX_BODY_BYTES, MAX_SIGNALS
from proactive.segment import segment_ingest


def _inflate(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise ParseError(f"Malformed gzip body: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"The body is over {max_bytes // (1024 * 1024)} MB uncompressed.")
    return out


def _segment_body(request: Request) -> tuple[Any, bool]:
    """The parsed JSON body and whether it is free of `\\u0000` escapes."""
    body = _raw_body(request)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding == "gzip":
        body = _inflate(body)
    elif encoding not in ("", "identity"):
        raise ParseError(f"Unsupported Content-Encoding {encoding[:20]!r}.")
    return _loads_signals(body, field="batch"), b"\\u0000" not in body


class SegmentResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    # The metaclass moves declared fields into _declared_fields, so this does not replace
    # Serializer.errors; the stubs cannot tell a field from an override.
    errors = SignalErrorSerializer(many=True)  # type: ignore[assignment]


# One message is any JSON object (a bad one is a per-record error); the batch route needs a
# `batch` list of them.
BATCH_BODY = {
    "type": "object",
    "properties": {"batch": {"type": "array", "maxItems": MAX_SIGNALS}},
    "required": ["batch"],
}
SCHEMA: dict[str, Any] = {
    "request": {"application/json": {"type": "object"}},
    "responses": {
        200: SegmentResponseSerializer,
        400: OpenApiResponse(description="Malformed request"),
        401: OpenApiResponse(description="Bad write key"),
        413: OpenApiResponse(description="Over 10,000 messages or 10 MB"),
        429: OpenApiResponse(description="Rate limited; see Retry-After"),
    },
}


def require_segment_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular hook: a Segment route without a body is a 400 ("Malformed JSON"), so its
    schema says the body is required (a raw JSON schema does not imply it)."""
    for path, operations in result.get("paths", {}).items():
        if path.startswith("/ingest/segment/"):
            for operation in operations.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation["requestBody"]["required"] = True
    return result


class SegmentView(IngestView):
    authentication_classes = [WriteKeyAuthentication]
    kind: str | None = None  # the message type the route implies (None: the batch route)

    @extend_schema(**SCHEMA)
    def post(self, request: Request) -> Response:
        data, nul_free = _segment_body(request)
        if self.kind is None:
            if not isinstance(data, dict) or not isinstance(data.get("batch"), list):
                raise ParseError('Expected a JSON object with a "batch" list.')
            messages = data["batch"]
            if len(messages) > MAX_SIGNALS:
                raise PayloadTooLarge(f"At most {MAX_SIGNALS:,} messages per request.")
        else:
            if not isinstance(data, dict):
                raise ParseError("Expected a JSON object.")
            messages = [data]
        result = segment_ingest(tenant=self.tenant, messages=messages, kind=self.kind, nul_free=nul_free)
        return Response(result.as_response())


class SegmentBatchView(SegmentView):
    kind = None

    @extend_schema(**{**SCHEMA, "request": {"application/json": BATCH_BODY}})
    def post(self, request: Request) -> Response:
        return super().post(request)


class SegmentTrackView(SegmentView):
    kind = "track"


class SegmentIdentifyView(SegmentView):
    kind = "identify"


class SegmentPageView(SegmentView):
    kind = "page"


class SegmentScreenView(SegmentView):
    kind = "screen"
