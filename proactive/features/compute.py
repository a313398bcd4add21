"""Point-in-time features, set-based for all customers of a tenant.

As of T a customer sees only signals with timestamp <= T. Windowed counts read whole UTC
days inside the window from `SignalDaily` and raw `Signal` rows only for the two partial
days at the window's edges, so a 30-day window costs ~2 days of raw rows, never 30.

For count(P, D) with window (T - D days, T]:
    full days  date(T) - D + 1 .. date(T) - 1          -> SignalDaily
    head       (T - D days, midnight(date(T) - D + 1))  -> Signal
    today      [midnight(date(T)), T]                   -> Signal
The three parts are disjoint and cover the window exactly.

Conventions (documented in the contract's spirit, chosen so every value is defined):
    trend(P) = (c7 + 1) / (c28 / 4 + 1), c7 = count in (T-7d, T], c28 = count in (T-35d, T-7d];
               1.0 means "same as usual", no activity at all is also 1.0, and 0/0 cannot happen.
    days_since_last(P) = NULL when no matching signal at or before T.
    days_since_signup  = NULL when signed_up_at is unknown (negative when it is after T).
    risk_score         = the customer's current RiskScore (the table holds one row per customer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
from django.db import connection

from accounts.models import Tenant
from proactive.features.metrics import Kind, Metric, parse_metric

COUNT_WINDOWS = (1, 3, 7, 14, 30)
NAME_WINDOWS = (1, 7, 30)
TREND_RECENT = 7
TREND_BASE = 35
MAX_FAMILIES = 12
MAX_TOP_NAMES = 10
MAX_CATEGORIES = 20


@dataclass(frozen=True)
class FeatureFrame:
    customer_ids: np.ndarray
    names: list[str]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def row(self, customer_id: int) -> dict[str, float | None]:
        idx = int(np.searchsorted(self.customer_ids, customer_id))
        if idx >= len(self.customer_ids) or self.customer_ids[idx] != customer_id:
            raise KeyError(customer_id)
        return {
            n: (None if np.isnan(v) else float(v)) for n, v in zip(self.names, self.values[idx], strict=True)
        }


def _utc(as_of: datetime) -> datetime:
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return as_of.astimezone(UTC)


def _midnight(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _match(column: str, pattern: str) -> tuple[str, list]:
    if pattern == "*":
        return "TRUE", []
    if pattern.endswith("*"):
        return f"starts_with({column}, %s)", [pattern[:-1]]
    return f"{column} = %s", [pattern]


def _windows(metrics: Sequence[Metric]) -> list[int]:
    days: set[int] = set()
    for m in metrics:
        if m.kind is Kind.COUNT:
            days.add(int(m.days or 0))
        elif m.kind is Kind.TREND:
            days.update((TREND_RECENT, TREND_BASE))
    return sorted(days)


def features_query(
    *,
    tenant_id: int,
    as_of: datetime,
    metrics: Sequence[Metric],
    customer_ids: Sequence[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> tuple[str, list, list[str]]:
    """SQL selecting `customer_id` and m0..mN (one per metric, in order) as of `as_of`.

    Numeric metrics are double precision (NULL when undefined), attribute.KEY is jsonb.
    `id_range` is inclusive. Wrap it as a subquery: SELECT ... FROM (sql) f WHERE ...
    """
    as_of = _utc(as_of)
    today = as_of.date()
    today_start = _midnight(today)
    windows = _windows(metrics)
    needs_last = any(m.kind is Kind.DAYS_SINCE_LAST for m in metrics)
    needs_signals = bool(windows) or needs_last
    aliases = [f"m{i}" for i in range(len(metrics))]

    def cust_filter(col: str) -> tuple[str, list]:
        sql, params = "", []
        if customer_ids is not None:
            sql += f" AND {col} = ANY(%s)"
            params.append(list(customer_ids))
        if id_range is not None:
            sql += f" AND {col} BETWEEN %s AND %s"
            params.extend(id_range)
        return sql, params

    params: list = []
    agg_sql = ""
    agg_cols: dict[tuple, str] = {}
    if needs_signals:
        # Level 1: per (customer, name) window sums from rollups and edge raw rows.
        roll_cols, roll_params, raw_cols, raw_params = [], [], [], []
        head_ranges: list[tuple[datetime, datetime]] = []
        for d in windows:
            first_full = today - timedelta(days=d - 1)
            roll_cols.append(f"(sum(d.count) FILTER (WHERE d.day >= %s))::int AS w{d}")
            roll_params.append(first_full)
            start, head_end = as_of - timedelta(days=d), _midnight(first_full)
            raw_cols.append(
                "(count(*) FILTER (WHERE s.timestamp > %s AND (s.timestamp < %s OR s.timestamp >= %s)))::int"
                f" AS w{d}"  # int, so that the outer sum() is bigint, not numeric
            )
            raw_params.extend([start, head_end, today_start])
            head_ranges.append((start, head_end))
        roll_cols.append("max(d.last_at) AS last_at")
        raw_cols.append("max(s.timestamp) AS last_at")

        roll_where, roll_where_params = "d.tenant_id = %s AND d.day < %s", [tenant_id, today]
        if not needs_last:
            roll_where += " AND d.day >= %s"
            roll_where_params.append(today - timedelta(days=max(windows) - 1))
        f_sql, f_params = cust_filter("d.customer_id")
        roll_where += f_sql
        roll_where_params += f_params

        ranges_sql = " OR ".join(["(s.timestamp > %s AND s.timestamp < %s)"] * len(head_ranges))
        ranges_params = [v for r in head_ranges for v in r]
        edges = f" OR {ranges_sql}" if ranges_sql else ""
        raw_where = (
            f"s.tenant_id = %s AND s.timestamp <= %s AND s.timestamp >= %s AND (s.timestamp >= %s{edges})"
        )
        earliest = as_of - timedelta(days=max(windows)) if windows else today_start
        raw_where_params = [tenant_id, as_of, earliest, today_start, *ranges_params]
        f_sql, f_params = cust_filter("s.customer_id")
        raw_where += f_sql
        raw_where_params += f_params

        level1 = (
            # Only generated identifiers are interpolated; every value is a parameter.
            f"SELECT d.customer_id, d.name, {', '.join(roll_cols)} FROM proactive_signaldaily d "  # noqa: S608
            f"WHERE {roll_where} GROUP BY d.customer_id, d.name "
            f"UNION ALL "
            f"SELECT s.customer_id, s.name, {', '.join(raw_cols)} FROM proactive_signal s "
            f"WHERE {raw_where} GROUP BY s.customer_id, s.name"
        )
        level1_params = roll_params + roll_where_params + raw_params + raw_where_params

        # Level 2: per customer, one aggregate per (pattern, window) actually needed.
        l2_cols: list[str] = []
        l2_params: list = []

        def need(pattern: str, what: str) -> str:
            key = (pattern, what)
            if key not in agg_cols:
                alias = f"a{len(agg_cols)}"
                cond, cond_params = _match("u.name", pattern)
                fn = "max(u.last_at)" if what == "last" else f"sum(u.{what})"
                l2_cols.append(f"{fn} FILTER (WHERE {cond}) AS {alias}")
                l2_params.extend(cond_params)
                agg_cols[key] = alias
            return agg_cols[key]

        for m in metrics:
            if m.kind is Kind.COUNT:
                need(m.pattern, f"w{m.days}")
            elif m.kind is Kind.TREND:
                need(m.pattern, f"w{TREND_RECENT}")
                need(m.pattern, f"w{TREND_BASE}")
            elif m.kind is Kind.DAYS_SINCE_LAST:
                need(m.pattern, "last")
        agg_sql = (
            f"LEFT JOIN (SELECT u.customer_id, {', '.join(l2_cols)} FROM ({level1}) u "  # noqa: S608
            f"GROUP BY u.customer_id) a ON a.customer_id = c.id"
        )
        agg_params = l2_params + level1_params
    else:
        agg_params = []

    select_cols: list[str] = ["c.id AS customer_id"]
    select_params: list = []
    needs_risk = False
    for alias, m in zip(aliases, metrics, strict=True):
        if m.kind is Kind.COUNT:
            expr = f"coalesce(a.{agg_cols[(m.pattern, f'w{m.days}')]}, 0)::float8"
        elif m.kind is Kind.TREND:
            c7 = f"coalesce(a.{agg_cols[(m.pattern, f'w{TREND_RECENT}')]}, 0)"
            c35 = f"coalesce(a.{agg_cols[(m.pattern, f'w{TREND_BASE}')]}, 0)"
            expr = f"(({c7} + 1)::float8 / (({c35} - {c7})::float8 / 4 + 1))"
        elif m.kind is Kind.DAYS_SINCE_LAST:
            expr = f"(extract(epoch FROM (%s - a.{agg_cols[(m.pattern, 'last')]})) / 86400)::float8"
            select_params.append(as_of)
        elif m.kind is Kind.DAYS_SINCE_SIGNUP:
            expr = "(extract(epoch FROM (%s - c.signed_up_at)) / 86400)::float8"
            select_params.append(as_of)
        elif m.kind is Kind.RISK_SCORE:
            expr = "rs.score::float8"
            needs_risk = True
        else:
            expr = "(c.attributes -> %s)"
            select_params.append(m.key)
        select_cols.append(f"{expr} AS {alias}")

    risk_sql, risk_params = "", []
    if needs_risk:
        risk_sql = "LEFT JOIN proactive_riskscore rs ON rs.tenant_id = %s AND rs.customer_id = c.id"
        risk_params = [tenant_id]
    where_sql, where_params = cust_filter("c.id")
    sql = (
        f"SELECT {', '.join(select_cols)} FROM proactive_customer c {agg_sql} {risk_sql} "  # noqa: S608
        f"WHERE c.tenant_id = %s{where_sql}"
    )
    params = select_params + agg_params + risk_params + [tenant_id, *where_params]
    return sql, params, aliases


def _attribute_profile(tenant_id: int, keys: Sequence[str]) -> dict[str, tuple[str, list]]:
    """Per attribute key: ("numeric", []) or ("categorical", sorted values), tenant-wide so that
    every chunk (and a single customer) gets the same columns."""
    if not keys:
        return {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT e.key, jsonb_typeof(e.value) AS t, e.value #>> '{}' AS v, count(*) "
            "FROM proactive_customer c, jsonb_each(c.attributes) e "
            "WHERE c.tenant_id = %s AND e.key = ANY(%s) GROUP BY 1, 2, 3",
            [tenant_id, list(keys)],
        )
        rows = cur.fetchall()
    types: dict[str, set[str]] = {}
    values: dict[str, set[str]] = {}
    for key, typ, value, _n in rows:
        if typ == "null":
            continue
        types.setdefault(key, set()).add(typ)
        values.setdefault(key, set()).add(value)
    profile: dict[str, tuple[str, list]] = {}
    for key in keys:
        kinds = types.get(key, set())
        if kinds and kinds <= {"number", "boolean"}:
            profile[key] = ("numeric", [])
        elif kinds == {"string"} and len(values[key]) <= MAX_CATEGORIES:
            profile[key] = ("categorical", sorted(values[key]))
        else:
            profile[key] = ("numeric", [])  # mixed or high-cardinality: numbers only, rest NaN
    return profile


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return np.nan


def compute_features(
    *,
    tenant: Tenant,
    as_of: datetime,
    metrics: Sequence[Metric] | None = None,
    customer_ids: Sequence[int] | None = None,
    chunk_size: int = 20000,
) -> FeatureFrame:
    """Feature matrix for the tenant's customers as of `as_of` (default feature set when
    `metrics` is None). Attributes: numbers/booleans as floats, low-cardinality strings
    one-hot as "attribute.KEY=value" (NaN when the customer has no value)."""
    if metrics is None:
        metrics = default_metrics(tenant, as_of)
    metrics = list(metrics)
    attr_keys = [m.key for m in metrics if m.kind is Kind.ATTRIBUTE]
    profile = _attribute_profile(tenant.pk, attr_keys)

    names: list[str] = []
    for m in metrics:
        if m.kind is Kind.ATTRIBUTE and profile[m.key][0] == "categorical":
            names.extend(f"attribute.{m.key}={v}" for v in profile[m.key][1])
        else:
            names.append(str(m))

    with connection.cursor() as cur:
        if customer_ids is not None:
            ids = sorted({int(i) for i in customer_ids})
            ranges = [
                (ids[i], ids[min(i + chunk_size, len(ids)) - 1]) for i in range(0, len(ids), chunk_size)
            ]
        else:
            cur.execute("SELECT id FROM proactive_customer WHERE tenant_id = %s ORDER BY id", [tenant.pk])
            all_ids = [r[0] for r in cur.fetchall()]
            ids = None
            ranges = [
                (all_ids[i], all_ids[min(i + chunk_size, len(all_ids)) - 1])
                for i in range(0, len(all_ids), chunk_size)
            ]
        id_parts, value_parts = [], []
        for lo, hi in ranges:
            chunk_ids = [i for i in ids if lo <= i <= hi] if ids is not None else None
            sql, params, _aliases = features_query(
                tenant_id=tenant.pk, as_of=as_of, metrics=metrics, customer_ids=chunk_ids, id_range=(lo, hi)
            )
            cur.execute(f"SELECT * FROM ({sql}) f ORDER BY customer_id", params)  # noqa: S608
            rows = cur.fetchall()
            if not rows:
                continue
            id_parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
            value_parts.append(_rows_to_matrix(rows, metrics, profile, len(names)))
    if not id_parts:
        return FeatureFrame(np.empty(0, dtype=np.int64), names, np.empty((0, len(names))))
    return FeatureFrame(np.concatenate(id_parts), names, np.vstack(value_parts))


def _rows_to_matrix(
    rows: list[tuple], metrics: Sequence[Metric], profile: dict[str, tuple[str, list]], width: int
) -> np.ndarray:
    raw = np.array([r[1:] for r in rows], dtype=object)
    for j, m in enumerate(metrics):
        if m.kind is Kind.ATTRIBUTE:  # Django's psycopg backend returns jsonb as text
            raw[:, j] = [json.loads(v) if isinstance(v, str) else v for v in raw[:, j]]
    out = np.empty((len(rows), width), dtype=np.float64)
    col = 0
    for j, m in enumerate(metrics):
        column = raw[:, j]
        if m.kind is not Kind.ATTRIBUTE:
            out[:, col] = np.array(column, dtype=np.float64)  # None -> NaN
            col += 1
        elif profile[m.key][0] == "numeric":
            out[:, col] = [_to_float(v) for v in column]
            col += 1
        else:
            cats = profile[m.key][1]
            missing = np.array([v is None for v in column])
            for cat in cats:
                hit = np.array([v == cat for v in column], dtype=np.float64)
                hit[missing] = np.nan
                out[:, col] = hit
                col += 1
    return out


def customer_features(*, tenant: Tenant, customer_id: int, as_of: datetime) -> dict[str, float | None]:
    """One customer's default features (for the profile page and API)."""
    frame = compute_features(tenant=tenant, as_of=as_of, customer_ids=[customer_id])
    return frame.row(customer_id)


def default_metrics(tenant: Tenant, as_of: datetime) -> list[Metric]:
    """The model's default feature set, derived from what the tenant actually sends.

    Signal names come from the SignalName catalogue, restricted to names first seen at or
    before `as_of`; families (the part before the first dot) get counts over 1/3/7/14/30
    days, recency and trend; the most frequent names that are not alone in their family
    get 1/7/30-day counts, recency and trend. Plus tenure and the attributes whose values
    are numbers, booleans or low-cardinality strings.
    """
    as_of = _utc(as_of)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT name, total FROM proactive_signalname WHERE tenant_id = %s AND first_seen <= %s "
            "ORDER BY total DESC, name",
            [tenant.pk, as_of],
        )
        catalogue = cur.fetchall()
        cur.execute(
            "SELECT e.key, count(DISTINCT e.value), "
            "bool_and(jsonb_typeof(e.value) IN ('number', 'boolean')), "
            "bool_and(jsonb_typeof(e.value) = 'string') "
            "FROM proactive_customer c, jsonb_each(c.attributes) e WHERE c.tenant_id = %s "
            "AND jsonb_typeof(e.value) <> 'null' GROUP BY e.key ORDER BY e.key",
            [tenant.pk],
        )
        attributes = cur.fetchall()

    family_totals: dict[str, int] = {}
    family_members: dict[str, int] = {}
    for name, total in catalogue:
        family = name.split(".", 1)[0]
        family_totals[family] = family_totals.get(family, 0) + total
        family_members[family] = family_members.get(family, 0) + 1
    families = sorted(family_totals, key=lambda f: (-family_totals[f], f))[:MAX_FAMILIES]

    metrics: list[Metric] = []
    if catalogue:
        metrics += [parse_metric(f"count(*, {d})") for d in (7, 30)]
        metrics += [parse_metric("days_since_last(*)"), parse_metric("trend(*)")]
    for family in families:
        pattern = f"{family}.*" if any(n.startswith(f"{family}.") for n, _ in catalogue) else family
        metrics += [parse_metric(f"count({pattern}, {d})") for d in COUNT_WINDOWS]
        metrics += [parse_metric(f"days_since_last({pattern})"), parse_metric(f"trend({pattern})")]
    top = [n for n, _ in catalogue if "." in n and family_members[n.split(".", 1)[0]] > 1][:MAX_TOP_NAMES]
    for name in top:
        metrics += [parse_metric(f"count({name}, {d})") for d in NAME_WINDOWS]
        metrics += [parse_metric(f"days_since_last({name})"), parse_metric(f"trend({name})")]
    metrics.append(parse_metric("days_since_signup"))
    for key, distinct, numeric, string in attributes:
        if numeric or (string and distinct <= MAX_CATEGORIES):
            try:
                metrics.append(parse_metric(f"attribute.{key}"))
            except ValueError:
                continue  # keys outside the grammar cannot be referenced by a metric
    return list(dict.fromkeys(metrics))
