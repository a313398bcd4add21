"""Segment's wire format mapped onto Proactive's ingestion (the libraries of Segment and
RudderStack send it).

A message becomes a signal record or a customer record of the batch APIs and then goes through
the same rules (`proactive.ingest_rules`) and the same storage (`signals_ingest`,
`customers_upsert`): one validation, one storage path, whichever way a tenant sends.

- track -> a signal: messageId is the idempotency key, userId the customer, the event name
  normalised to the signal-name grammar, timestamp (else originalTimestamp), properties.
- page / screen -> `page.viewed` / `screen.viewed`, the page's name (and category) in properties.
- identify -> a customer upsert: traits (top level, or context.traits as RudderStack sends them)
  name, email, createdAt (-> signed_up_at); every other trait is an attribute.

Anonymous messages (no userId), unsupported types (group, alias) and malformed messages are
rejected per message; nothing else in the batch is affected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accounts.models import Tenant
from proactive.ingest import customers_upsert, signals_ingest
from proactive.ingest_rules import echo_id

SIGNAL_TYPES = {"track": None, "page": "page.viewed", "screen": "screen.viewed"}
TYPES = frozenset({*SIGNAL_TYPES, "identify"})
# Where the signal rules name a field, a Segment sender reads the field it sent.
SEGMENT_LABELS = {"id": "messageId", "customer": "userId", "name": "event", "timestamp": "timestamp"}
_OTHER = re.compile(r"[^a-z0-9_.:-]+")
ANONYMOUS_ERROR = "'userId' is required (anonymous events are not stored)"
TRAIT_FIELDS = {"name": "name", "email": "email", "createdAt": "signed_up_at"}


def event_name(event: str) -> str:
    """Segment's free-text event name in the signal-name grammar: lower case, and each run of
    other characters becomes one `_` ("Order Completed" -> `order_completed`)."""
    return _OTHER.sub("_", event.lower())


@dataclass
class SegmentResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        return {
            "success": True,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


def _user_id(msg: dict) -> str | None:
    user = msg.get("userId")
    if isinstance(user, int) and not isinstance(user, bool):
        return str(user)  # the libraries pass numeric ids through as numbers
    return user if isinstance(user, str) and user else None


def _signal_record(msg: dict, kind: str, user: str) -> dict[str, Any]:
    name = SIGNAL_TYPES[kind]
    if name is None:
        event = msg.get("event")
        name = event_name(event) if isinstance(event, str) else event
    props = msg.get("properties")
    if kind != "track" and (props is None or isinstance(props, dict)):
        props = dict(props or {})
        for key in ("name", "category"):
            if msg.get(key) is not None:
                props[key] = msg[key]
    ts = msg.get("timestamp")
    if ts is None:
        ts = msg.get("originalTimestamp")
    return {
        "id": echo_id(msg, "messageId"),
        "customer": user,
        "name": name,
        "timestamp": ts,
        "properties": props,
    }


def _customer_record(msg: dict, user: str) -> dict[str, Any] | str:
    # Segment sends traits at the top level, RudderStack's libraries in context.traits.
    context = msg.get("context")
    traits = msg.get("traits")
    if traits is None and isinstance(context, dict):
        traits = context.get("traits")
    if traits is None:
        traits = {}
    if not isinstance(traits, dict):
        return "'traits' must be an object"
    rec: dict[str, Any] = {"external_id": user}
    attributes = {}
    for key, value in traits.items():
        if key in TRAIT_FIELDS:
            rec[TRAIT_FIELDS[key]] = value
        else:
            attributes[key] = value
    if attributes:
        rec["attributes"] = attributes
    return rec


def segment_ingest(
    *,
    tenant: Tenant,
    messages: Sequence[Any],
    kind: str | None = None,
    now: datetime | None = None,
    nul_free: bool = False,
) -> SegmentResult:
    """Store a batch of Segment messages; `kind` forces the type (the single-message routes).

    Identifies are upserted before the signals are stored, so a new user's first events find
    the customer already named. Errors carry the message's index and messageId."""
    result = SegmentResult()
    errors: list[tuple[int, str | None, str]] = []
    signals: list[dict] = []
    signal_at: list[int] = []
    customers: list[dict] = []
    customer_at: list[int] = []
    for index, msg in enumerate(messages):
        if not isinstance(msg, dict):
            errors.append((index, None, "must be an object"))
            continue
        mtype = kind or msg.get("type")
        if mtype not in TYPES:
            errors.append((index, echo_id(msg, "messageId"), f"unsupported type {str(mtype)[:40]!r}"))
            continue
        user = _user_id(msg)
        if user is None:
            errors.append(
                (index, echo_id(msg, "messageId"), "'userId' is required (anonymous events are not stored)")
            )
            continue
        if mtype == "identify":
            rec = _customer_record(msg, user)
            if isinstance(rec, str):
                errors.append((index, echo_id(msg, "messageId"), rec))
            else:
                customers.append(rec)
                customer_at.append(index)
        else:
            signals.append(_signal_record(msg, mtype, user))
            signal_at.append(index)

    if customers:
        upserted = customers_upsert(tenant=tenant, records=customers, now=now)
        bad = {e["index"] for e in upserted.errors}
        result.accepted += len(customers) - len(bad)
        for e in upserted.errors:
            at = customer_at[e["index"]]
            errors.append((at, echo_id(messages[at], "messageId"), _traits_error(e["error"])))
    if signals:
        stored = signals_ingest(
            tenant=tenant, records=signals, now=now, nul_free=nul_free, labels=SEGMENT_LABELS
        )
        result.accepted += stored.accepted
        result.duplicates += stored.duplicates
        for e in stored.errors:
            errors.append((signal_at[e["index"]], e["id"], e["error"]))
    errors.sort(key=lambda item: item[0])
    result.rejected = len(errors)
    result.errors = [{"index": index, "id": key, "error": error} for index, key, error in errors]
    return result


_CUSTOMER_TO_TRAIT = {f"'{ours}'": f"'traits.{theirs}'" for theirs, ours in TRAIT_FIELDS.items()}


def _traits_error(error: str) -> str:
    """A customer rule's message in the sender's terms ('signed_up_at' -> 'traits.createdAt')."""
    field_name = error.split(" ", 1)[0]
    if field_name in _CUSTOMER_TO_TRAIT:
        return _CUSTOMER_TO_TRAIT[field_name] + error[len(field_name) :]
    if field_name == "'external_id'":
        return "'userId'" + error[len(field_name) :]
    return error
