"""Ingestion services: customers and signals in, set-based.

Signals go through one fast path, all in one transaction per batch: validate in Python
(first occurrence of a key in the batch wins), resolve external ids to customer ids (one
lookup; unknown customers are created), drop the keys already stored (one index probe),
COPY the new rows straight into `proactive_signal`, then upsert the daily rollups and the
name catalogue from the same rows, aggregated in SQL. A failed request writes nothing.

A resent key is never stored (nor counted) twice, also when two requests race: the unique
index on (tenant, key) makes the second COPY fail with a unique violation once the first
commits, and the batch is retried; its probe then sees the first one's keys. After
`FAST_ATTEMPTS` such races the batch goes through `INSERT ... ON CONFLICT DO NOTHING
RETURNING`, which cannot fail on a duplicate. Customers are created in external-id order,
signals in key order and rollups in (customer, name, day) order, so concurrent batches lock
in the same order instead of deadlocking (deadlocks are retried anyway).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from accounts.api_parsers import contains_nul
from accounts.models import Tenant

MAX_SIGNALS = 10_000
MAX_CUSTOMERS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_KEY = 128
MAX_EXTERNAL_ID = 255
FUTURE_SLACK = timedelta(hours=1)
NAME_RE = re.compile(r"^[a-z0-9_.:-]{1,100}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEADLOCK_RETRIES = 3
FAST_ATTEMPTS = 3
SIGNAL_FIELDS = frozenset({"id", "customer", "name", "timestamp", "properties"})


@dataclass
class SignalsResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CustomersResult:
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


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
    return parsed.astimezone(UTC)


NUL_ERROR = "strings must not contain NUL characters"
SURROGATE_ERROR = "strings must be valid Unicode (no lone surrogates)"
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _valid_unicode(*texts: str) -> bool:
    try:
        for text in texts:
            text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _signal_error(rec: Any, latest: datetime, *, check_nul: bool = True) -> tuple[str | None, tuple | None]:
    """Classify one record: (error, None) or (None, (key, customer, name, ts, properties JSON)).

    The timestamp comes back as a datetime in UTC and the properties as JSON text, ready for
    COPY. `check_nul=False` skips the NUL walk when the caller knows the body holds none."""
    if not isinstance(rec, dict):
        return "must be an object", None
    if check_nul and contains_nul(rec):
        return NUL_ERROR, None
    key, customer, name = rec.get("id"), rec.get("customer"), rec.get("name")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        return f"'id' must be a string of 1-{MAX_KEY} characters", None
    if not isinstance(customer, str) or not 1 <= len(customer) <= MAX_EXTERNAL_ID:
        return f"'customer' must be an external_id string of 1-{MAX_EXTERNAL_ID} characters", None
    if not isinstance(name, str) or not NAME_RE.match(name):
        return "'name' must match ^[a-z0-9_.:-]{1,100}$", None
    try:
        ts = parse_timestamp(rec.get("timestamp"))
    except ValueError as exc:
        return f"'timestamp' {exc}", None
    if ts > latest:
        return "'timestamp' is more than an hour in the future", None
    props = rec.get("properties")
    if not props:
        if props is not None and not isinstance(props, dict):
            return "'properties' must be an object", None
        props_json = "{}"
    elif not isinstance(props, dict):
        return "'properties' must be an object", None
    else:
        props_json = _dumps(props)
    if not rec.keys() <= SIGNAL_FIELDS:
        return f"unknown field(s): {', '.join(sorted(set(rec) - SIGNAL_FIELDS))}", None
    return None, (key, customer, name, ts, props_json)


def _echo_id(rec: Any) -> str | None:
    """The record's id for its error entry: a string (lone surrogates escaped so the response
    renders) or null, as the contract's schema says (an id of another type is not echoed)."""
    key = rec.get("id") if isinstance(rec, dict) else None
    if not isinstance(key, str):
        return None
    return key if _valid_unicode(key) else key.encode("utf-8", "backslashreplace").decode()


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)


def _retrying(fn: Any) -> Any:
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return fn()
        except (OperationalError, psycopg.errors.OperationalError) as exc:
            retryable = _sqlstate(exc) in ("40P01", "40001")
            if not retryable or attempt == DEADLOCK_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def signals_ingest(
    *, tenant: Tenant, records: Sequence[Any], now: datetime | None = None, nul_free: bool = False
) -> SignalsResult:
    """Store a batch of signals: bad records reported by index, good ones stored once.

    `nul_free=True` says the JSON text held no `\\u0000` escape (so no string can hold NUL)."""
    now = now or timezone.now()
    latest = now + FUTURE_SLACK
    check_nul = not nul_free
    result = SignalsResult()
    errors = result.errors
    rows: list[tuple] = []
    append = rows.append
    for index, rec in enumerate(records):
        error, row = _signal_error(rec, latest, check_nul=check_nul)
        if row is not None and not (row[0].isascii() and row[1].isascii() and row[4].isascii()):
            # Lone surrogates (\\ud800 in the JSON) parse but are not UTF-8: PostgreSQL would
            # refuse the whole batch.
            error = None if _valid_unicode(row[0], row[1], row[4]) else SURROGATE_ERROR
        if error is None and row is not None:
            append(row)
        else:
            errors.append({"index": index, "id": _echo_id(rec), "error": error})
    result.rejected = len(errors)
    if rows:
        inserted = signals_copy_insert(tenant_id=tenant.pk, rows=rows, received_at=now)
        result.accepted = inserted
        result.duplicates = len(rows) - inserted
    return result


# Big parameters travel as one JSON text each: Django's psycopg cursor binds on the client, where
# quoting a 5,000-element list costs ~8 us an element in Python, and PostgreSQL parses JSON in C.
# `= ANY(ARRAY(...))` keeps the lookups index scans whatever the planner guesses for the JSON.
RESOLVE_CUSTOMERS_SQL = (
    "SELECT external_id, id FROM proactive_customer WHERE tenant_id = %s "
    "AND external_id = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)

CREATE_CUSTOMERS_SQL = """
INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, created_at, updated_at)
SELECT %(tenant)s, x, '', '', '{}'::jsonb, %(now)s, %(now)s
FROM json_array_elements_text(%(externals)s::json) AS x ORDER BY x
ON CONFLICT (tenant_id, external_id) DO NOTHING
RETURNING external_id, id
"""

EXISTING_KEYS_SQL = (
    "SELECT key FROM proactive_signal WHERE tenant_id = %s "
    "AND key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)

COPY_SIGNALS_SQL = (
    "COPY proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at) FROM STDIN"
)

# Rollups of the rows just stored, aggregated in SQL from [customer id, name, timestamp]
# triples: one upsert of SignalDaily and one of SignalName, each in lock order.
ROLLUPS_SQL = """
WITH r AS (
    SELECT (e->>0)::bigint AS customer_id, e->>1 AS name, (e->>2)::timestamptz AS ts
    FROM json_array_elements(%(rows)s::json) AS e
), daily AS (
    INSERT INTO proactive_signaldaily AS d (tenant_id, customer_id, name, day, count, last_at)
    SELECT %(tenant)s, customer_id, name, (ts AT TIME ZONE 'UTC')::date, count(*), max(ts)
    FROM r GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (tenant_id, customer_id, name, day)
    DO UPDATE SET count = d.count + EXCLUDED.count, last_at = greatest(d.last_at, EXCLUDED.last_at)
)
INSERT INTO proactive_signalname AS n (tenant_id, name, total, first_seen, last_seen)
SELECT %(tenant)s, name, count(*), min(ts), max(ts) FROM r GROUP BY 2 ORDER BY 2
ON CONFLICT (tenant_id, name) DO UPDATE SET total = n.total + EXCLUDED.total,
    first_seen = least(n.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(n.last_seen, EXCLUDED.last_seen)
"""

# The race-proof path (after FAST_ATTEMPTS unique violations), from [key, customer id, name,
# timestamp, properties JSON text] rows in key order: only the rows actually stored come back
# from RETURNING and feed the same rollups.
INSERT_ON_CONFLICT_SQL = """
INSERT INTO proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at)
SELECT %(tenant)s, (e->>1)::bigint, e->>0, e->>2, (e->>3)::timestamptz, (e->>4)::jsonb, %(now)s
FROM json_array_elements(%(rows)s::json) WITH ORDINALITY AS u(e, ord)
ORDER BY u.ord
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING customer_id, name, timestamp
"""


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if not value.isprintable():
        value = value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Jsonb):
        return json.dumps(value.obj)
    return value


class _KeyRace(Exception):
    """Another transaction committed one of our keys between the probe and the COPY."""


def signals_copy_insert(*, tenant_id: int, rows: Iterable[tuple], received_at: datetime) -> int:
    """The fast path: rows are (key, customer external_id, name, timestamp, properties) with the
    timestamp aware (or ISO text) and properties JSON text (or Jsonb). Stores the rows whose key
    is new (the first one of a key repeated in `rows`), creates unknown customers and updates the
    rollups, in one transaction; returns the number of rows stored (the rest were duplicates)."""
    first: dict[str, tuple] = {}
    for row in rows:
        if row[0] not in first:
            first[row[0]] = row
    batch = [
        (key, ext, name, _as_text(ts), _as_text(props))
        for key, ext, name, ts, props in (first[k] for k in sorted(first))
    ]
    if not batch:
        return 0

    def attempt(n: int) -> int:
        try:
            return _store(tenant_id, batch, received_at, fast=n < FAST_ATTEMPTS)
        except _KeyRace:
            return attempt(n + 1)

    return _retrying(lambda: attempt(1))


def _customer_ids(cur: psycopg.Cursor, tenant_id: int, externals: list[str], now: datetime) -> dict[str, int]:
    """external_id -> id, creating the unknown ones: one lookup when every customer exists."""
    cur.execute(RESOLVE_CUSTOMERS_SQL, [tenant_id, _dumps(externals)])
    ids: dict[str, int] = dict(cur.fetchall())
    missing = [e for e in externals if e not in ids]
    if missing:
        cur.execute(CREATE_CUSTOMERS_SQL, {"tenant": tenant_id, "now": now, "externals": _dumps(missing)})
        ids.update(cur.fetchall())
        raced = [e for e in missing if e not in ids]  # created meanwhile by a concurrent batch
        if raced:
            cur.execute(RESOLVE_CUSTOMERS_SQL, [tenant_id, _dumps(raced)])
            ids.update(cur.fetchall())
    return ids


def _store(tenant_id: int, batch: list[tuple], received_at: datetime, *, fast: bool) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cur = cursor.cursor  # the psycopg cursor, for COPY
        ids = _customer_ids(cur, tenant_id, sorted({r[1] for r in batch}), received_at)
        if fast:
            cur.execute(EXISTING_KEYS_SQL, [tenant_id, _dumps([r[0] for r in batch])])
            existing = {k for (k,) in cur.fetchall()}
            new = [r for r in batch if r[0] not in existing] if existing else batch
            if not new:
                return 0
            prefix = f"{tenant_id}\t"
            suffix = f"\t{received_at.isoformat()}\n"
            payload = "".join(
                [
                    f"{prefix}{ids[ext]}\t{_copy_text(key)}\t{_copy_text(name)}\t{ts}\t{_copy_text(props)}{suffix}"
                    for key, ext, name, ts, props in new
                ]
            ).encode()
            try:
                with cur.copy(COPY_SIGNALS_SQL) as copy:
                    copy.write(payload)
            except psycopg.errors.UniqueViolation:
                raise _KeyRace from None
            stored = [(ids[ext], name, ts) for _key, ext, name, ts, _props in new]
        else:
            rows = [(key, ids[ext], name, ts, props) for key, ext, name, ts, props in batch]
            cur.execute(
                INSERT_ON_CONFLICT_SQL, {"tenant": tenant_id, "now": received_at, "rows": _dumps(rows)}
            )
            stored = [(cid, name, ts.isoformat()) for cid, name, ts in cur.fetchall()]
            if not stored:
                return 0
        cur.execute(ROLLUPS_SQL, {"tenant": tenant_id, "rows": _dumps(stored)})
    return len(stored)


def _customer_error(rec: Any) -> tuple[str | None, dict | None]:
    if not isinstance(rec, dict):
        return "must be an object", None
    if contains_nul(rec):
        return NUL_ERROR, None
    ext = rec.get("external_id")
    if not isinstance(ext, str) or not 1 <= len(ext) <= MAX_EXTERNAL_ID:
        return f"'external_id' must be a string of 1-{MAX_EXTERNAL_ID} characters", None
    extra = set(rec) - {"external_id", "name", "email", "signed_up_at", "attributes"}
    if extra:
        return f"unknown field(s): {', '.join(sorted(extra))}", None
    clean: dict[str, Any] = {"external_id": ext}
    if rec.get("name") is not None:
        if not isinstance(rec["name"], str) or len(rec["name"]) > 255:
            return "'name' must be a string of at most 255 characters", None
        clean["name"] = rec["name"]
    if rec.get("email") is not None:
        email = rec["email"]
        if not isinstance(email, str) or len(email) > 254 or (email and not EMAIL_RE.match(email)):
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
    return None, clean


UPSERT_CUSTOMERS_NEW_SQL = """
INSERT INTO proactive_customer
    (tenant_id, external_id, name, email, signed_up_at, attributes, created_at, updated_at)
SELECT %(tenant)s, r.external_id, coalesce(r.name, ''), coalesce(r.email, ''), r.signed_up_at,
       coalesce(r.attributes, '{}'::jsonb), %(now)s, %(now)s
FROM jsonb_to_recordset(%(rows)s) AS r(external_id text, name text, email text,
                                       signed_up_at timestamptz, attributes jsonb)
ORDER BY r.external_id
ON CONFLICT (tenant_id, external_id) DO NOTHING
RETURNING external_id
"""

UPSERT_CUSTOMERS_EXISTING_SQL = """
UPDATE proactive_customer c SET
    name = coalesce(r.name, c.name), email = coalesce(r.email, c.email),
    signed_up_at = coalesce(r.signed_up_at, c.signed_up_at),
    attributes = c.attributes || coalesce(r.attributes, '{}'::jsonb), updated_at = %(now)s
FROM jsonb_to_recordset(%(rows)s) AS r(external_id text, name text, email text,
                                       signed_up_at timestamptz, attributes jsonb)
WHERE c.tenant_id = %(tenant)s AND c.external_id = r.external_id AND NOT (r.external_id = ANY(%(created)s))
"""


def customers_upsert(
    *, tenant: Tenant, records: Sequence[Any], now: datetime | None = None
) -> CustomersResult:
    """Upsert customers by external_id; given fields overwrite, attributes are merged.

    A later record for the same external_id in the batch merges over an earlier one.
    """
    now = now or timezone.now()
    result = CustomersResult()
    merged: dict[str, dict[str, Any]] = {}
    for index, rec in enumerate(records):
        error, clean = _customer_error(rec)
        if error is not None or clean is None:
            result.errors.append({"index": index, "error": error})
            continue
        prior = merged.setdefault(clean["external_id"], {"external_id": clean["external_id"]})
        attrs = {**prior.get("attributes", {}), **clean.pop("attributes", {})}
        prior.update(clean)
        if attrs or "attributes" in prior:
            prior["attributes"] = attrs
    if not merged:
        return result
    payload = [
        {**r, "signed_up_at": r["signed_up_at"].isoformat()} if "signed_up_at" in r else r
        for r in merged.values()
    ]

    def run() -> tuple[int, int]:
        with transaction.atomic(), connection.cursor() as cur:
            params: dict[str, Any] = {"tenant": tenant.pk, "now": now, "rows": Jsonb(payload)}
            cur.execute(UPSERT_CUSTOMERS_NEW_SQL, params)
            created = [r[0] for r in cur.fetchall()]
            cur.execute(UPSERT_CUSTOMERS_EXISTING_SQL, {**params, "created": created})
            return len(created), cur.rowcount

    result.created, result.updated = _retrying(run)
    return result


def signal_tables_analyze(cur: Any) -> None:
    """Refresh the planner's statistics after a bulk load. Until autovacuum gets to it they
    describe the tables as they were (often empty): the outcomes sweep then read every
    customer's rollups per outreach row (4-42 s per run instead of 0.05 s for the demo tenant).
    Sampling is cheap (a fixed-size sample per table)."""
    cur.execute("ANALYZE proactive_signal, proactive_signaldaily, proactive_signalname")


def rollups_rebuild(*, tenant_id: int) -> None:
    """Recompute a tenant's SignalDaily and SignalName from raw signals (after a bulk COPY that
    bypassed the fast path, or to repair). Set-based, in one transaction."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM proactive_signaldaily WHERE tenant_id = %s", [tenant_id])
        cur.execute("DELETE FROM proactive_signalname WHERE tenant_id = %s", [tenant_id])
        cur.execute(
            "INSERT INTO proactive_signaldaily (tenant_id, customer_id, name, day, count, last_at) "
            "SELECT %s, customer_id, name, (timestamp AT TIME ZONE 'UTC')::date, count(*), max(timestamp) "
            "FROM proactive_signal WHERE tenant_id = %s GROUP BY 2, 3, 4",
            [tenant_id, tenant_id],
        )
        cur.execute(
            "INSERT INTO proactive_signalname (tenant_id, name, total, first_seen, last_seen) "
            "SELECT %s, name, sum(count), min(last_at), max(last_at) FROM proactive_signaldaily "
            "WHERE tenant_id = %s GROUP BY 2",
            [tenant_id, tenant_id],
        )
        # first_seen must be the earliest timestamp, not a day's last one.
        cur.execute(
            "UPDATE proactive_signalname n SET first_seen = f.first FROM ("
            "  SELECT name, min(timestamp) AS first FROM proactive_signal WHERE tenant_id = %s GROUP BY name"
            ") f WHERE n.tenant_id = %s AND n.name = f.name",
            [tenant_id, tenant_id],
        )
        signal_tables_analyze(cur)
