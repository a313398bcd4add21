"""Ingestion services: customers and signals in, set-based.

Signals go through one fast path: validate in Python, COPY the good rows into a temporary
staging table, then one `INSERT ... SELECT ... ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING` whose returned rows (only the ones actually stored) update the daily rollups
and the name catalogue in the same statement. Everything runs in one transaction: a
failed request writes nothing, and a resent key is never stored (nor counted) twice,
also when two requests race, because the unique index serialises them. Rows are
inserted in key order and rollups in (customer, name, day) order so that concurrent
batches lock in the same order instead of deadlocking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _signal_error(rec: Any, latest: datetime) -> tuple[str | None, tuple | None]:
    if not isinstance(rec, dict):
        return "must be an object", None
    if contains_nul(rec):
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
    props = rec.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return "'properties' must be an object", None
    extra = set(rec) - {"id", "customer", "name", "timestamp", "properties"}
    if extra:
        return f"unknown field(s): {', '.join(sorted(extra))}", None
    return None, (key, customer, name, ts, Jsonb(props))


def _retrying(fn: Any) -> Any:
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return fn()
        except OperationalError as exc:
            retryable = getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")
            if not retryable or attempt == DEADLOCK_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def signals_ingest(*, tenant: Tenant, records: Sequence[Any], now: datetime | None = None) -> SignalsResult:
    """Store a batch of signals: bad records reported by index, good ones stored once."""
    now = now or timezone.now()
    latest = now + FUTURE_SLACK
    result = SignalsResult()
    rows: list[tuple] = []
    for index, rec in enumerate(records):
        error, row = _signal_error(rec, latest)
        if error is not None:
            result.errors.append(
                {"index": index, "id": rec.get("id") if isinstance(rec, dict) else None, "error": error}
            )
        else:
            rows.append(row)
    result.rejected = len(result.errors)
    if rows:
        inserted = _retrying(lambda: signals_copy_insert(tenant_id=tenant.pk, rows=rows, received_at=now))
        result.accepted = inserted
        result.duplicates = len(rows) - inserted
    return result


CREATE_CUSTOMERS_SQL = """
INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, created_at, updated_at)
SELECT %(tenant)s, x, '', '', '{}'::jsonb, %(now)s, %(now)s FROM unnest(%(externals)s::text[]) AS x ORDER BY x
ON CONFLICT (tenant_id, external_id) DO NOTHING
"""

INSERT_ROWS_SQL = """
WITH ins AS (
    INSERT INTO proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at)
    SELECT %(tenant)s, st.customer_id, st.key, st.name, st.ts, st.properties, %(now)s
    FROM (SELECT DISTINCT ON (key) * FROM signal_staging ORDER BY key, ord) st
    ORDER BY st.key
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING customer_id, name, timestamp
), daily AS (
    INSERT INTO proactive_signaldaily AS d (tenant_id, customer_id, name, day, count, last_at)
    SELECT %(tenant)s, customer_id, name, (timestamp AT TIME ZONE 'UTC')::date, count(*), max(timestamp)
    FROM ins GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (tenant_id, customer_id, name, day)
    DO UPDATE SET count = d.count + EXCLUDED.count, last_at = greatest(d.last_at, EXCLUDED.last_at)
), names AS (
    INSERT INTO proactive_signalname AS n (tenant_id, name, total, first_seen, last_seen)
    SELECT %(tenant)s, name, count(*), min(timestamp), max(timestamp) FROM ins GROUP BY 2 ORDER BY 2
    ON CONFLICT (tenant_id, name) DO UPDATE SET total = n.total + EXCLUDED.total,
        first_seen = least(n.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(n.last_seen, EXCLUDED.last_seen)
)
SELECT count(*) FROM ins
"""


def signals_copy_insert(*, tenant_id: int, rows: Iterable[tuple], received_at: datetime) -> int:
    """The fast path: rows are (key, customer external_id, name, timestamp, properties) with the
    timestamp aware (or ISO text) and properties Jsonb (or JSON text). Creates unknown customers,
    resolves external ids with one index lookup (no join the planner could misjudge right after
    a bulk load), COPYs into a staging table and inserts new keys plus their rollups. Returns
    the number of rows stored (the rest were duplicates)."""
    rows = rows if isinstance(rows, list) else list(rows)
    externals = sorted({r[1] for r in rows})
    params = {"tenant": tenant_id, "now": received_at, "externals": externals}
    with transaction.atomic(), connection.cursor() as cursor:
        cur = cursor.cursor  # the psycopg cursor, for COPY
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS signal_staging (ord serial, key text, customer_id bigint, "
            "name text, ts timestamptz, properties jsonb) ON COMMIT DELETE ROWS"
        )
        cur.execute(CREATE_CUSTOMERS_SQL, params)
        cur.execute(
            "SELECT external_id, id FROM proactive_customer WHERE tenant_id = %(tenant)s "
            "AND external_id = ANY(%(externals)s::text[])",
            params,
        )
        ids = dict(cur.fetchall())
        with cur.copy("COPY signal_staging (key, customer_id, name, ts, properties) FROM STDIN") as copy:
            for key, ext, name, ts, props in rows:
                copy.write_row((key, ids[ext], name, ts, props))
        cur.execute(INSERT_ROWS_SQL, params)
        inserted = cur.fetchone()[0]
        cur.execute("TRUNCATE signal_staging")
    return int(inserted)


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
        if error is not None:
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
            params = {"tenant": tenant.pk, "now": now, "rows": Jsonb(payload)}
            cur.execute(UPSERT_CUSTOMERS_NEW_SQL, params)
            created = [r[0] for r in cur.fetchall()]
            cur.execute(UPSERT_CUSTOMERS_EXISTING_SQL, {**params, "created": created})
            return len(created), cur.rowcount

    result.created, result.updated = _retrying(run)
    return result


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
