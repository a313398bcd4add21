"""Point-in-time labels for training snapshots, set-based over all of a tenant's customers.

A snapshot at cut-off C sees only signals with timestamp <= C (the features) and is
labelled by what happens in (C, C + horizon] (the label window). The two never overlap.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from accounts.models import Tenant
from proactive.models import Customer, Signal
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params


def target_patterns(tenant: Tenant) -> list[str]:
    if tenant.prediction_target == Tenant.Target.INACTIVITY:
        return list(tenant.activity_signals)
    return list(tenant.contact_signals)


def window_hits(
    *, tenant: Tenant, cutoffs: list[datetime], horizon_days: int, patterns: list[str]
) -> np.ndarray:
    """(customer_id, cutoff_index) pairs with a matching signal in (cutoff, cutoff + horizon].

    Returned as one int64 key per pair: customer_id * 1024 + cutoff_index.
    """
    if not cutoffs:
        return np.empty(0, dtype=np.int64)
    match, match_params = patterns_sql(patterns, "s.name", "target")
    sql = f"""
        WITH cut AS (
            SELECT (u.ord - 1)::int AS idx, u.ts
            FROM unnest(%(cutoffs)s::timestamptz[]) WITH ORDINALITY AS u(ts, ord)
        )
        SELECT DISTINCT s.customer_id::bigint * 1024 + cut.idx
        FROM {Signal._meta.db_table} s
        JOIN cut ON s.timestamp > cut.ts AND s.timestamp <= cut.ts + %(horizon_days)s * interval '1 day'
        WHERE s.tenant_id = %(tenant_id)s AND s.timestamp > %(lo)s AND s.timestamp <= %(hi)s AND {match}
    """  # noqa: S608 - identifiers are ours; values are parameters
    params = {
        "cutoffs": list(cutoffs),
        "horizon_days": horizon_days,
        "tenant_id": tenant.pk,
        "lo": min(cutoffs),
        "hi": max(cutoffs) + timedelta(days=horizon_days),
    }
    with connection.cursor() as cur:
        cur.execute(sql, merge_params(params, match_params))
        rows = cur.fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def labels_for(
    *,
    tenant: Tenant,
    cutoffs: list[datetime],
    horizon_days: int,
    customer_ids: np.ndarray,
    cutoff_index: np.ndarray,
) -> np.ndarray:
    """The tenant's target (0/1) for each (customer, cutoff) row."""
    hits = window_hits(
        tenant=tenant, cutoffs=cutoffs, horizon_days=horizon_days, patterns=target_patterns(tenant)
    )
    keys = customer_ids.astype(np.int64) * 1024 + cutoff_index.astype(np.int64)
    seen = np.isin(keys, hits)
    if tenant.prediction_target == Tenant.Target.INACTIVITY:
        return (~seen).astype(np.float64)
    return seen.astype(np.float64)


def customer_first_seen(*, tenant: Tenant) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's id and when they first existed for us (sign-up or first signal), epoch seconds.

    A customer joins a snapshot only if they existed at its cut-off.
    """
    sql = f"""
        SELECT c.id, extract(epoch FROM LEAST(c.signed_up_at, f.first_at))
        FROM {Customer._meta.db_table} c
        LEFT JOIN (
            SELECT customer_id, min(timestamp) AS first_at FROM {Signal._meta.db_table}
            WHERE tenant_id = %s GROUP BY customer_id
        ) f ON f.customer_id = c.id
        WHERE c.tenant_id = %s
        ORDER BY c.id
    """  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, [tenant.pk, tenant.pk])
        rows = cur.fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    first = np.array([np.nan if r[1] is None else float(r[1]) for r in rows], dtype=np.float64)
    return ids, first
