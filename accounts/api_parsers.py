"""JSON bodies PostgreSQL can store: hostile nesting, NaN and NUL are a 400, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.exceptions import ParseError
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


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with the nesting limit (the default for every API view)."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        data = loads_limited(text)
        if contains_nul(data):
            raise ParseError("JSON strings must not contain NUL characters.")
        return data
