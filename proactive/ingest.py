"""Ingestion services: customers and signals in, set-based.

Signals go through one fast path, all in one transaction per batch: validate in Python with
`proactive.ingest_rules` (first occurrence of a key in the batch wins), resolve external ids to
customer ids (one lookup; unknown customers are created), COPY the rows straight into
`proactive_signal`, and append one rollup delta row for the batch (`proactive.rollups`: folded
into the daily rollups and the name catalogue off the request path). A failed request writes
nothing.

A resent key is never stored (nor counted) twice, also when two requests race: the unique
index on (tenant, key) makes a COPY that meets a stored key fail; the batch then probes for
the stored keys (one index lookup) and COPYs only the new ones. A concurrent commit between
probe and COPY fails that COPY too and the batch is retried; after `FAST_ATTEMPTS` such races
it goes through `INSERT ... ON CONFLICT DO NOTHING RETURNING`, which cannot fail on a
duplicate. Customers are created in external-id order and signals in key order, so concurrent
batches lock in the same order instead of deadlocking (deadlocks are retried anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from accounts.models import Tenant
from proactive.features.values import declared_keys, numbers, values_rebuild
from proactive.ingest_rules import (
    FUTURE_SLACK,
    SIGNAL_LABELS,
    SignalRow,
    customer_error,
    echo_id,
    signal_error,
)
from proactive.ingest_rules import dumps as _dumps
from proactive.rollups import DELTA_SQL, VALUES_LOCK

DEADLOCK_RETRIES = 3
FAST_ATTEMPTS = 3


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
    *,
    tenant: Tenant,
    records: Sequence[Any],
    now: datetime | None = None,
    nul_free: bool = False,
    labels: dict[str, str] = SIGNAL_LABELS,
) -> SignalsResult:
    """Store a batch of signals: bad records reported by index, good ones stored once.

    `nul_free=True` says the JSON text held no `\\u0000` escape (so no string can hold NUL);
    `labels` names the fields in errors as the sender's wire format does."""
    now = now or timezone.now()
    result = SignalsResult()
    latest = now + FUTURE_SLACK
    result.errors, batch = signals_validate(records, latest, check_nul=not nul_free, labels=labels)
    result.rejected = len(result.errors)
    if batch:
        result.accepted = _store_batch(tenant.pk, batch, now)
        result.duplicates = len(records) - result.rejected - result.accepted
    return result


def signals_validate(
    records: Sequence[Any],
    latest: datetime,
    *,
    check_nul: bool = True,
    labels: dict[str, str] = SIGNAL_LABELS,
) -> tuple[list[dict[str, Any]], list[tuple]]:
    """(errors by index, the good rows ready for `_store_batch`): the first good record of each
    key, in key order, timestamps as ISO text."""
    errors: list[dict[str, Any]] = []
    first: dict[str, SignalRow] = {}
    for index, rec in enumerate(records):
        error, row = signal_error(rec, latest, check_nul=check_nul, labels=labels)
        if row is not None:
            if row[0] not in first:
                first[row[0]] = row
        else:
            errors.append({"index": index, "id": echo_id(rec), "error": error})
    ordered = [first[key] for key in sorted(first)]
    batch = [(key, ext, name, ts.isoformat(), props) for key, ext, name, ts, props in ordered]
    return errors, batch


# Big parameters travel as one JSON text each: Django's psycopg cursor binds on the client, where
# quoting a 5,000-element list costs ~8 us an element in Python, and PostgreSQL parses JSON in C.
# A join on the unnested JSON, not `col = ANY(array)`: with statistics that do not know the tenant
# yet (a new tenant, or autovacuum off) the planner scanned the tenant's rows through its FK index
# and compared each with the whole array, 22 s per 20,000-row batch at 100,000 customers. A join
# probes the (tenant, key) unique index per element, or hashes, whatever the statistics say.
RESOLVE_CUSTOMERS_SQL = (
    "SELECT c.external_id, c.id FROM json_array_elements_text(%s::json) AS x(e) "
    "JOIN proactive_customer c ON c.tenant_id = %s AND c.external_id = x.e"
)

CREATE_CUSTOMERS_SQL = """
INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, created_at, updated_at)
SELECT %(tenant)s, x, '', '', '{}'::jsonb, %(now)s, %(now)s
FROM json_array_elements_text(%(externals)s::json) AS x ORDER BY x
ON CONFLICT (tenant_id, external_id) DO NOTHING
RETURNING external_id, id
"""

EXISTING_KEYS_SQL = (
    "SELECT s.key FROM json_array_elements_text(%s::json) AS x(e) "
    "JOIN proactive_signal s ON s.tenant_id = %s AND s.key = x.e"
)

COPY_SIGNALS_SQL = (
    "COPY proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at) FROM STDIN"
)

# The race-proof path (after FAST_ATTEMPTS unique violations), from [key, customer id, name,
# timestamp, properties JSON text] rows in key order: only the rows actually stored come back
# from RETURNING and go into the rollup delta.
INSERT_ON_CONFLICT_SQL = """
INSERT INTO proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at)
SELECT %(tenant)s, (e->>1)::bigint, e->>0, e->>2, (e->>3)::timestamptz, (e->>4)::jsonb, %(now)s
FROM json_array_elements(%(rows)s::json) WITH ORDINALITY AS u(e, ord)
ORDER BY u.ord
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING customer_id, name, timestamp, properties
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
    is new (the first one of a key repeated in `rows`), creates unknown customers and appends the
    rollup delta, in one transaction; returns the number of rows stored (the rest were duplicates)."""
    first: dict[str, tuple] = {}
    for row in rows:
        if row[0] not in first:
            first[row[0]] = row
    batch = [
        (key, ext, name, _as_text(ts), _as_text(props))
        for key, ext, name, ts, props in (first[k] for k in sorted(first))
    ]
    return _store_batch(tenant_id, batch, received_at)


def _store_batch(tenant_id: int, batch: list[tuple], received_at: datetime) -> int:
    """Store `batch` (unique keys in key order, timestamps and properties as text); retried on a
    key race (then, after FAST_ATTEMPTS, through ON CONFLICT) and on deadlocks."""
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
    cur.execute(RESOLVE_CUSTOMERS_SQL, [_dumps(externals), tenant_id])
    ids: dict[str, int] = dict(cur.fetchall())
    missing = [e for e in externals if e not in ids]
    if missing:
        cur.execute(CREATE_CUSTOMERS_SQL, {"tenant": tenant_id, "now": now, "externals": _dumps(missing)})
        ids.update(cur.fetchall())
        raced = [e for e in missing if e not in ids]  # created meanwhile by a concurrent batch
        if raced:
            cur.execute(RESOLVE_CUSTOMERS_SQL, [_dumps(raced), tenant_id])
            ids.update(cur.fetchall())
    return ids


def _copy_payload(tenant_id: int, ids: dict[str, int], rows: list[tuple], received_at: datetime) -> bytes:
    prefix = f"{tenant_id}\t"
    suffix = f"\t{received_at.isoformat()}\n"
    return "".join(
        [
            f"{prefix}{ids[ext]}\t{_copy_text(key)}\t{_copy_text(name)}\t{ts}\t{_copy_text(props)}{suffix}"
            for key, ext, name, ts, props in rows
        ]
    ).encode()


def _store(tenant_id: int, batch: list[tuple], received_at: datetime, *, fast: bool) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cur = cursor.cursor  # the psycopg cursor, for COPY
        ids = _customer_ids(cur, tenant_id, sorted({r[1] for r in batch}), received_at)
        keys = _declared(cur, tenant_id)
        if fast:
            # Resends are the exception: COPY first and probe for stored keys only when the unique
            # index says some are (the probe costs as much as a tenth of the COPY).
            new = batch
            try:
                with transaction.atomic(), cur.copy(COPY_SIGNALS_SQL) as copy:
                    copy.write(_copy_payload(tenant_id, ids, new, received_at))
            except psycopg.errors.UniqueViolation:
                cur.execute(EXISTING_KEYS_SQL, [_dumps([r[0] for r in batch]), tenant_id])
                existing = {k for (k,) in cur.fetchall()}
                new = [r for r in batch if r[0] not in existing]
                if not new:
                    return 0
                try:
                    with cur.copy(COPY_SIGNALS_SQL) as copy:
                        copy.write(_copy_payload(tenant_id, ids, new, received_at))
                except psycopg.errors.UniqueViolation:
                    raise _KeyRace from None
            stored = _delta_rows(((ids[ext], name, ts, props) for _key, ext, name, ts, props in new), keys)
        else:
            rows = [(key, ids[ext], name, ts, props) for key, ext, name, ts, props in batch]
            cur.execute(
                INSERT_ON_CONFLICT_SQL, {"tenant": tenant_id, "now": received_at, "rows": _dumps(rows)}
            )
            stored = _delta_rows(
                ((cid, name, ts.isoformat(), p) for cid, name, ts, p in cur.fetchall()), keys
            )
            if not stored:
                return 0
        cur.execute(DELTA_SQL, [tenant_id, _dumps(stored), received_at])
    return len(stored)


def _declared(cur: psycopg.Cursor, tenant_id: int) -> dict[str, list[str]]:
    """The tenant's declared numeric properties by signal name, read in the batch's transaction
    under the value rollup's shared lock."""
    # The value rollup's lock, shared until the batch commits: a rebuild of this tenant's values
    # (`values_rebuild`, exclusive) waits for the batch, or the batch for one range of it.
    cur.execute(
        "SELECT numeric_properties, pg_advisory_xact_lock_shared(%s, id::int) "
        "FROM accounts_tenant WHERE id = %s",
        [VALUES_LOCK, tenant_id],
    )
    row = cur.fetchone()
    declared = row[0] if row else None
    if isinstance(declared, str):
        declared = json.loads(declared)
    return declared_keys(declared or [])


def _delta_rows(rows: Iterable[tuple], keys: dict[str, list[str]]) -> list[tuple]:
    """[customer id, name, timestamp] per stored signal, plus {property: number} when its name has
    declared properties and it carries numbers for them (`proactive.features.values`)."""
    if not keys:
        return [(cid, name, ts) for cid, name, ts, _props in rows]
    out: list[tuple] = []
    for cid, name, ts, props in rows:
        wanted = keys.get(name)
        found = numbers(props, wanted) if wanted else None
        out.append((cid, name, ts, found) if found else (cid, name, ts))
    return out


# Attribute history (`CustomerAttributeChange`) is written by the same statements: for a new
# customer a row with the attributes it arrives with (as given: stripping JSON nulls per row cost
# 3x the history insert itself, and readers treat null as no value), for an existing one a row
# with the sent values that differ from the stored ones (an identical resend writes none). Its
# time is the upsert's `now`, when we learned the values. The comparison reads the statement's
# snapshot: two concurrent upserts of one customer each record their values, ordered by their
# `now`, while the stored attributes follow the order they commit in (rarely different).
UPSERT_CUSTOMERS_NEW_SQL = """
WITH created AS (
    INSERT INTO proactive_customer
        (tenant_id, external_id, name, email, signed_up_at, attributes, created_at, updated_at)
    SELECT %(tenant)s, r.external_id, coalesce(r.name, ''), coalesce(r.email, ''), r.signed_up_at,
           coalesce(r.attributes, '{}'::jsonb), %(now)s, %(now)s
    FROM jsonb_to_recordset(%(rows)s) AS r(external_id text, name text, email text,
                                           signed_up_at timestamptz, attributes jsonb)
    ORDER BY r.external_id
    ON CONFLICT (tenant_id, external_id) DO NOTHING
    RETURNING id, external_id, attributes
), history AS (
    INSERT INTO proactive_customerattributechange (tenant_id, customer_id, valid_from, attributes)
    SELECT %(tenant)s, c.id, %(now)s, c.attributes FROM created c WHERE c.attributes <> '{}'::jsonb
)
SELECT external_id FROM created
"""

UPSERT_CUSTOMERS_EXISTING_SQL = """
WITH r AS MATERIALIZED (
    SELECT c.id, c.attributes AS stored, r.name, r.email, r.signed_up_at, r.attributes
    FROM jsonb_to_recordset(%(rows)s) AS r(external_id text, name text, email text,
                                           signed_up_at timestamptz, attributes jsonb)
    JOIN proactive_customer c ON c.tenant_id = %(tenant)s AND c.external_id = r.external_id
), history AS (
    INSERT INTO proactive_customerattributechange AS h (tenant_id, customer_id, valid_from, attributes)
    SELECT %(tenant)s, r.id, %(now)s, d.changed
    FROM r CROSS JOIN LATERAL (
        SELECT jsonb_object_agg(e.key, e.value) AS changed FROM jsonb_each(r.attributes) e
        WHERE coalesce(r.stored -> e.key, 'null'::jsonb) IS DISTINCT FROM e.value
    ) d
    WHERE d.changed IS NOT NULL
    ON CONFLICT (tenant_id, customer_id, valid_from)
    DO UPDATE SET attributes = h.attributes || EXCLUDED.attributes
)
UPDATE proactive_customer c SET
    name = coalesce(r.name, c.name), email = coalesce(r.email, c.email),
    signed_up_at = coalesce(r.signed_up_at, c.signed_up_at),
    attributes = c.attributes || coalesce(r.attributes, '{}'::jsonb), updated_at = %(now)s
FROM r
WHERE c.tenant_id = %(tenant)s AND c.id = r.id
"""


def attributes_changed_record(*, customer: Any, before: dict, after: dict, now: datetime) -> bool:
    """Record an edit of a customer's attributes made outside the upsert (the Django admin) in
    the attribute history, as the upsert would: the keys whose value changed, a removed key as
    null. Returns whether anything changed."""
    from proactive.models import CustomerAttributeChange

    changed = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: None for k in before if k not in after and before[k] is not None})
    if not changed:
        return False
    row, created = CustomerAttributeChange.objects.for_tenant(customer.tenant_id).get_or_create(
        tenant_id=customer.tenant_id, customer=customer, valid_from=now, defaults={"attributes": changed}
    )
    if not created:
        row.attributes = {**row.attributes, **changed}
        row.save(update_fields=["attributes"])
    return True


def customers_upsert(
    *, tenant: Tenant, records: Sequence[Any], now: datetime | None = None
) -> CustomersResult:
    """Upsert customers by external_id; given fields overwrite, attributes are merged.

    A later record for the same external_id in the batch merges over an earlier one. Changed
    attribute values are recorded with time `now` (`CustomerAttributeChange`).
    """
    now = now or timezone.now()
    result = CustomersResult()
    merged: dict[str, dict[str, Any]] = {}
    for index, rec in enumerate(records):
        error, clean = customer_error(rec)
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
            # Any: psycopg adapts Jsonb, which the stubs' parameter types do not list.
            params: dict[str, Any] = {"tenant": tenant.pk, "now": now, "rows": Jsonb(payload)}
            cur.execute(UPSERT_CUSTOMERS_NEW_SQL, params)
            created = {r[0] for r in cur.fetchall()}
            # Only the rows that existed are updated: filtered here, as `NOT (x = ANY(created))`
            # compared every row with every created id (quadratic in the batch).
            existing = [r for r in payload if r["external_id"] not in created]
            if not existing:
                return len(created), 0
            params["rows"] = Jsonb(existing)
            cur.execute(UPSERT_CUSTOMERS_EXISTING_SQL, params)
            return len(created), cur.rowcount

    result.created, result.updated = _retrying(run)
    return result


def signal_tables_analyze(cur: Any) -> None:
    """Refresh the planner's statistics after a bulk load. Until autovacuum gets to it they
    describe the tables as they were (often empty): the outcomes sweep then read every
    customer's rollups per outreach row (4-42 s per run instead of 0.05 s for the demo tenant).
    Sampling is cheap (a fixed-size sample per table)."""
    cur.execute(
        "ANALYZE proactive_signal, proactive_signaldaily, proactive_signalhourly, proactive_signalname"
    )


HOURLY_REBUILD_SQL = """
WITH pat AS (SELECT unnest(%(patterns)s::text[]) AS p)
INSERT INTO proactive_signalhourly (tenant_id, customer_id, name, hour, count, first_at, last_at)
SELECT %(tenant)s, s.customer_id, s.name, date_trunc('hour', s.timestamp, 'UTC'), count(*),
       min(s.timestamp), max(s.timestamp)
FROM proactive_signal s
WHERE s.tenant_id = %(tenant)s AND s.timestamp >= %(since)s AND EXISTS (SELECT 1 FROM pat WHERE pat.p = s.name
        OR (right(pat.p, 1) = '*' AND starts_with(s.name, left(pat.p, -1))))
GROUP BY 2, 3, 4
"""


def signal_hourly_rebuild(*, tenant_id: int, patterns: Sequence[str], since: datetime | None = None) -> int:
    """Recompute a tenant's SignalHourly for `patterns` from raw signals at or after `since`
    (all when None): after a bulk load, or when the monitored patterns change."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM proactive_signalhourly WHERE tenant_id = %s", [tenant_id])
        cur.execute(
            HOURLY_REBUILD_SQL,
            {
                "tenant": tenant_id,
                "patterns": list(patterns),
                "since": since or datetime(1970, 1, 1, tzinfo=UTC),
            },
        )
        rows = cur.rowcount
        coverage: list[Any] = [tenant_id, Jsonb(list(patterns)), since or datetime(1970, 1, 1, tzinfo=UTC)]
        cur.execute(
            "INSERT INTO proactive_signalhourlycoverage (tenant_id, patterns, since, rebuilt_at) "
            "VALUES (%s, %s, %s, now()) ON CONFLICT (tenant_id) DO UPDATE SET patterns = EXCLUDED.patterns, "
            "since = EXCLUDED.since, rebuilt_at = EXCLUDED.rebuilt_at",
            coverage,  # a list of Any: the stubs' parameter types do not list psycopg's Jsonb
        )
        return rows


def rollups_rebuild(*, tenant_id: int) -> None:
    """Recompute a tenant's SignalDaily and SignalName from raw signals (after a bulk COPY that
    bypassed the fast path, or to repair). Set-based, in one transaction; pending deltas are
    dropped, as the raw signals they describe are counted here."""
    with transaction.atomic(), connection.cursor() as cur:
        # Batches that commit after this wait for it: their signals are not counted below and
        # their deltas are folded later. Rebuilds are rare (bulk loads, repair).
        cur.execute("LOCK TABLE proactive_signalrollupdelta IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("DELETE FROM proactive_signalrollupdelta WHERE tenant_id = %s", [tenant_id])
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
        cur.execute("SELECT monitoring -> 'signals' FROM accounts_tenant WHERE id = %s", [tenant_id])
        (patterns,) = cur.fetchone()
        patterns = json.loads(patterns) if isinstance(patterns, str) else patterns
        signal_hourly_rebuild(tenant_id=tenant_id, patterns=patterns or [])
        cur.execute("SELECT numeric_properties FROM accounts_tenant WHERE id = %s", [tenant_id])
        (declared,) = cur.fetchone()
        declared = json.loads(declared) if isinstance(declared, str) else declared
        values_rebuild(tenant_id=tenant_id, properties=declared or [])
        signal_tables_analyze(cur)
