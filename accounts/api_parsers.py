"""JSON bodies PostgreSQL can store: hostile nesting, NaN and NUL are a 400, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 64


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects nest deeper than `limit` (iterative: safe on any input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character anywhere (PostgreSQL text and jsonb refuse it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
    raise ValueError(f"{name} is not valid JSON")


def loads_limited(body: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that raises ParseError for malformed (NaN too) or too deeply nested input."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ParseError(f"JSON nested deeper than {limit} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None
    if json_depth_exceeds(data, limit):
        raise ParseError(f"JSON nested deeper than {limit} levels.")
    return data


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


def read_limited(stream: Any, limit: int) -> bytes:
    """At most `limit` bytes of the body, or BodyTooLarge: DRF reads the raw stream, so Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE never applies to it."""
    if stream is None:
        return b""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge(f"Request body over {limit} bytes.")
    return raw


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with a body-size limit (API_MAX_BODY_BYTES, or the view's `max_body_bytes`)
    and the nesting limit: the default for every API view."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        view = parser_context.get("view")
        limit = getattr(view, "max_body_bytes", None) or settings.API_MAX_BODY_BYTES
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and str(declared).isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"Request body over {limit} bytes.")
        raw = read_limited(stream, limit)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        data = loads_limited(text)
        if contains_nul(data):
            raise ParseError("JSON strings must not contain NUL characters.")
        return data
