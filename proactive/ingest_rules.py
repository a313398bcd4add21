"""The ingestion rules, in one place: what a signal and a customer record must look like.

Every way in (`/api/v1/signals/batch`, `/api/v1/customers/batch`, the Segment-compatible source,
the demo generator) validates with these functions, and the API's schema serializers are built
from the same constants, so a rule changes here or nowhere.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from accounts.api_parsers import contains_nul

MAX_SIGNALS = 10_000
MAX_CUSTOMERS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_KEY = 128
MAX_EXTERNAL_ID = 255
MAX_CUSTOMER_NAME = 255
MAX_EMAIL = 254
FUTURE_SLACK = timedelta(hours=1)
NAME_PATTERN = r"^[a-z0-9_.:-]{1,100}$"
NAME_RE = re.compile(NAME_PATTERN)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SIGNAL_FIELDS = frozenset({"id", "customer", "name", "timestamp", "properties"})
CUSTOMER_FIELDS = frozenset({"external_id", "name", "email", "signed_up_at", "attributes"})

NUL_ERROR = "strings must not contain NUL characters"
SURROGATE_ERROR = "strings must be valid Unicode (no lone surrogates)"
NUMBER_ERROR = "numbers must be finite (1e400 is out of range)"

# A signal row ready for storage: (key, customer external_id, name, UTC timestamp, properties JSON).
SignalRow = tuple[str, str, str, datetime, str]

dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with an offset (a trailing Z is accepted); raises ValueError."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value[:40]!r} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00, 9999-12-31T23:59:59-05:00
        raise ValueError(f"{value[:40]!r} is out of range in UTC") from None


def valid_unicode(*texts: str) -> bool:
    """Whether the texts encode as UTF-8 (a lone surrogate parses from JSON but PostgreSQL refuses it)."""
    try:
        for text in texts:
            text.encode()
    except UnicodeEncodeError:
        return False
    return True


# Field names as a sender sees them: the signals API's own, or another wire format's (Segment).
SIGNAL_LABELS = {"id": "id", "customer": "customer", "name": "name", "timestamp": "timestamp"}


def signal_error(
    rec: Any, latest: datetime, *, check_nul: bool = True, labels: dict[str, str] = SIGNAL_LABELS
) -> tuple[str | None, SignalRow | None]:
    """Classify one signal record: (error, None) or (None, row).

    `latest` is the last acceptable timestamp (now plus FUTURE_SLACK). `check_nul=False` skips
    the NUL walk when the caller knows the body holds none."""
    if not isinstance(rec, dict):
        return "must be an object", None
    if check_nul and contains_nul(rec):
        return NUL_ERROR, None
    key, customer, name = rec.get("id"), rec.get("customer"), rec.get("name")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        return f"'{labels['id']}' must be a string of 1-{MAX_KEY} characters", None
    if not isinstance(customer, str) or not 1 <= len(customer) <= MAX_EXTERNAL_ID:
        return f"'{labels['customer']}' must be an external_id string of 1-{MAX_EXTERNAL_ID} characters", None
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"'{labels['name']}' must match {NAME_PATTERN}", None
    try:
        ts = parse_timestamp(rec.get("timestamp"))
    except ValueError as exc:
        return f"'{labels['timestamp']}' {exc}", None
    if ts > latest:
        return f"'{labels['timestamp']}' is more than an hour in the future", None
    props = rec.get("properties")
    if not props:
        if props is not None and not isinstance(props, dict):
            return "'properties' must be an object", None
        props_json = "{}"
    elif not isinstance(props, dict):
        return "'properties' must be an object", None
    else:
        try:
            props_json = dumps(props)
        except ValueError:  # 1e400 parsed as inf: not JSON that PostgreSQL can store
            return NUMBER_ERROR, None
    if not rec.keys() <= SIGNAL_FIELDS:
        return f"unknown field(s): {', '.join(sorted(set(rec) - SIGNAL_FIELDS))}", None
    if not (key.isascii() and customer.isascii() and props_json.isascii()) and not valid_unicode(
        key, customer, props_json
    ):
        return SURROGATE_ERROR, None
    return None, (key, customer, name, ts, props_json)


def echo_id(rec: Any, field: str = "id") -> str | None:
    """The record's id for its error entry: a string (lone surrogates escaped so the response
    renders) or null, as the contract's schema says (an id of another type is not echoed)."""
    key = rec.get(field) if isinstance(rec, dict) else None
    if not isinstance(key, str):
        return None
    return key if valid_unicode(key) else key.encode("utf-8", "backslashreplace").decode()


def customer_error(rec: Any) -> tuple[str | None, dict | None]:
    """Classify one customer record: (error, None) or (None, the given fields, cleaned)."""
    if not isinstance(rec, dict):
        return "must be an object", None
    if contains_nul(rec):
        return NUL_ERROR, None
    ext = rec.get("external_id")
    if not isinstance(ext, str) or not 1 <= len(ext) <= MAX_EXTERNAL_ID:
        return f"'external_id' must be a string of 1-{MAX_EXTERNAL_ID} characters", None
    extra = set(rec) - CUSTOMER_FIELDS
    if extra:
        return f"unknown field(s): {', '.join(sorted(extra))}", None
    clean: dict[str, Any] = {"external_id": ext}
    if rec.get("name") is not None:
        if not isinstance(rec["name"], str) or len(rec["name"]) > MAX_CUSTOMER_NAME:
            return f"'name' must be a string of at most {MAX_CUSTOMER_NAME} characters", None
        clean["name"] = rec["name"]
    if rec.get("email") is not None:
        email = rec["email"]
        if not isinstance(email, str) or len(email) > MAX_EMAIL or (email and not EMAIL_RE.match(email)):
            return "'email' must be an email address", None
        clean["email"] = email
    if rec.get("signed_up_at") is not None:
        try:
            clean["signed_up_at"] = parse_timestamp(rec["signed_up_at"])
        except ValueError as exc:
            return f"'signed_up_at' {exc}", None
    if rec.get("attributes") is not None:
        if not isinstance(rec["attributes"], dict):
            return "'attributes' must be an object", None
        clean["attributes"] = rec["attributes"]
    texts = [v for k, v in clean.items() if k in ("external_id", "name", "email")]
    if "attributes" in clean:
        try:
            texts.append(dumps(clean["attributes"]))
        except ValueError:  # 1e400 parsed as inf
            return NUMBER_ERROR, None
    if not valid_unicode(*texts):
        return SURROGATE_ERROR, None
    return None, clean
