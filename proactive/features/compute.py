"""Point-in-time features, set-based for all customers of a tenant.

As of T a customer sees only signals with timestamp <= T. Windowed counts read whole UTC
days inside the window from `SignalDaily` (plus the rollup deltas not folded in yet, read in the
same snapshot: `proactive.rollups.DAILY_SOURCE`) and raw `Signal` rows only for the two partial
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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from accounts.models import Tenant
from proactive.chunks import CHUNK_SIZE
from proactive.features.metrics import Kind, Metric, parse_metric
from proactive.rollups import DAILY_SOURCE, NAMES_SOURCE
from proactive.signal_patterns import patterns_sql
from proactive.sql import Params, merge_params

COUNT_WINDOWS = (1, 3, 7, 14, 30)
NAME_WINDOWS = (1, 7, 30)
TREND_RECENT = 7
TREND_BASE = 35
MAX_FAMILIES = 12
MAX_TOP_NAMES = 10
MAX_CATEGORIES = 20
BITS_PER_WORD = 62  # pattern bits per int8 column


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


def _match(column: str, pattern: str, name: str) -> tuple[str, Params]:
    """`column` matches `pattern`; its parameters are named after `name` (unique per statement)."""
    if pattern == "*":
        return "TRUE", {}
    return patterns_sql([pattern], column, name)


def _pattern(m: Metric) -> str:
    if m.pattern is None:
        raise ValueError(f"{m} has no signal pattern")
    return m.pattern


def _key(m: Metric) -> str:
    if m.key is None:
        raise ValueError(f"{m} has no attribute key")
    return m.key


def _windows(metrics: Sequence[Metric]) -> list[int]:
    days: set[int] = set()
    for m in metrics:
        if m.kind is Kind.COUNT:
            days.add(int(m.days or 0))
        elif m.kind is Kind.TREND:
            days.update((TREND_RECENT, TREND_BASE))
    return sorted(days)


@dataclass(frozen=True)
class _Plan:
    """What the signal part of a feature query computes: windows, patterns and their bits."""

    windows: list[int]
    needs_last: bool
    patterns: list[str]  # patterns other than '*', one bit each

    @classmethod
    def of(cls, metrics: Sequence[Metric]) -> _Plan:
        patterns: list[str] = []
        for m in metrics:
            signal = m.kind in (Kind.COUNT, Kind.TREND, Kind.DAYS_SINCE_LAST)
            if signal and m.pattern != "*" and m.pattern not in patterns:
                patterns.append(str(m.pattern))
        return cls(_windows(metrics), any(m.kind is Kind.DAYS_SINCE_LAST for m in metrics), patterns)

    @property
    def needs_signals(self) -> bool:
        return bool(self.windows) or self.needs_last

    @property
    def words(self) -> int:
        return max(1, -(-len(self.patterns) // BITS_PER_WORD))

    def bit(self, pattern: str) -> tuple[int, int] | None:
        """(word, bit value) of a pattern; None for '*' (every row matches)."""
        if pattern == "*":
            return None
        k = self.patterns.index(pattern)
        return k // BITS_PER_WORD, 1 << (k % BITS_PER_WORD)


def _customer_filter(
    col: str, customer_ids: Sequence[int] | None, id_range: tuple[int, int] | None
) -> tuple[str, Params]:
    """` AND col ...` for the given customers and/or id range (`customer_ids`, `id_lo`, `id_hi`:
    every filter of one statement restricts to the same customers, so they share the names)."""
    sql = ""
    params: Params = {}
    if customer_ids is not None:
        sql += f" AND {col} = ANY(%(customer_ids)s)"
        params["customer_ids"] = list(customer_ids)
    if id_range is not None:
        sql += f" AND {col} BETWEEN %(id_lo)s AND %(id_hi)s"
        params["id_lo"], params["id_hi"] = id_range
    return sql, params


def _signal_rows_sql(
    *,
    tenant_id: int,
    as_of: datetime,
    plan: _Plan,
    customer_ids: Sequence[int] | None,
    id_range: tuple[int, int] | None,
    rollups: bool = True,
    last_epoch: bool = False,
) -> tuple[str, Params]:
    """Per (customer, signal name): `customer_id, bits0.., w<D>.. (int), last_at` (or
    `last_epoch` in float seconds, for numpy), rollups and
    raw edge rows as separate rows (sum and max them). `bitsJ` has bit k set when the name
    matches pattern 62*J + k of the plan, computed once per row so that the per-customer
    aggregates test an integer instead of matching text.

    Parameters: `tenant_id`, `as_of`, `today`, `today_start`, `roll_from`, per window D
    `wD_first_day`, `wD_start`, `wD_head_end`, the customer filter's and the bits' (`pK_..`)."""
    as_of = _utc(as_of)
    today = as_of.date()
    today_start = _midnight(today)
    windows = plan.windows
    params: Params = {"tenant_id": tenant_id, "as_of": as_of, "today": today, "today_start": today_start}
    roll_cols, raw_cols, heads = [], [], []
    for d in windows:
        first_full = today - timedelta(days=d - 1)
        if d == 1:  # no full day: today comes from raw rows
            roll_cols.append("0 AS w1")
        else:
            roll_cols.append(
                f"coalesce(sum(d.count) FILTER (WHERE d.day >= %(w{d}_first_day)s), 0)::int AS w{d}"
            )
            params[f"w{d}_first_day"] = first_full
        # The window's partial first day: (as_of - D days, midnight of its first full day).
        params[f"w{d}_start"], params[f"w{d}_head_end"] = as_of - timedelta(days=d), _midnight(first_full)
        raw_cols.append(
            f"(count(*) FILTER (WHERE s.timestamp > %(w{d}_start)s AND (s.timestamp < %(w{d}_head_end)s "
            f"OR s.timestamp >= %(today_start)s)))::int AS w{d}"
        )
        heads.append(f"s.timestamp > %(w{d}_start)s AND s.timestamp < %(w{d}_head_end)s")
    roll_cols.append("max(d.last_at) AS last_at")
    raw_cols.append("max(s.timestamp) AS last_at")

    roll_where = "d.tenant_id = %(tenant_id)s AND d.day < %(today)s"
    if not plan.needs_last:
        roll_where += " AND d.day >= %(roll_from)s"
        params["roll_from"] = today - timedelta(days=max(windows) - 1)
    roll_f_sql, roll_f_params = _customer_filter("d.customer_id", customer_ids, id_range)
    roll_where += roll_f_sql

    # With an id range only, `+ 0` keeps the planner on the (tenant, timestamp) index: the
    # edges are a few partial days, while (tenant, customer, timestamp) walks every signal
    # of the range (measured 0.7-1.5 s vs ~20 ms per 10k customers).
    col = "s.customer_id" if customer_ids is not None else "(s.customer_id + 0)"
    f_sql, f_params = _customer_filter(col, customer_ids, id_range)
    # One range scan per part (today, then each window's partial first day), UNION ALL (the parts
    # are disjoint): an OR of the parts under one `timestamp >= as_of - longest window` bound
    # read every signal of that span once windows reached a year or more.
    spans = ["s.timestamp >= %(today_start)s AND s.timestamp <= %(as_of)s", *heads]
    raw_scans = " UNION ALL ".join(
        "SELECT s.customer_id, s.name, s.timestamp FROM proactive_signal s "  # noqa: S608
        f"WHERE s.tenant_id = %(tenant_id)s AND {span}{f_sql}"
        for span in spans
    )

    bit_cols, bit_params = _bits_sql(plan)
    last = "extract(epoch FROM u.last_at)::float8 AS last_epoch" if last_epoch else "u.last_at"
    cols = ", ".join(["u.customer_id", *bit_cols, *(f"u.w{d}" for d in windows), last])
    # Only generated identifiers are interpolated; every value is a parameter.
    rollup_sql = (
        f"SELECT d.customer_id, d.name, {', '.join(roll_cols)} FROM {DAILY_SOURCE} d "  # noqa: S608
        f"WHERE {roll_where} GROUP BY d.customer_id, d.name UNION ALL "
    )
    sql = (
        f"SELECT {cols} FROM ({rollup_sql if rollups else ''}"  # noqa: S608
        # Materialised so that the scan is planned on its own: otherwise the planner liked the
        # (tenant, customer, timestamp) index for its order and walked every signal (10 s).
        f"(WITH s AS MATERIALIZED ({raw_scans}) SELECT s.customer_id, s.name, {', '.join(raw_cols)} FROM s "
        f"GROUP BY s.customer_id, s.name)) u"
    )
    return sql, merge_params(params, bit_params, roll_f_params if rollups else {}, f_params)


def _bits_sql(plan: _Plan) -> tuple[list[str], Params]:
    """`bits0..` columns over `u.name`: bit k of word J set when the name matches pattern 62*J + k
    (pattern K of the plan binds `pK_names` or `pK_prefixes`)."""
    bit_cols: list[str] = []
    bit_params: Params = {}
    for w in range(plan.words):
        terms = []
        for k, pattern in enumerate(plan.patterns[w * BITS_PER_WORD : (w + 1) * BITS_PER_WORD]):
            cond, cond_params = _match("u.name", pattern, f"p{w * BITS_PER_WORD + k}")
            terms.append(f"CASE WHEN {cond} THEN {1 << k}::int8 ELSE 0::int8 END")
            bit_params = merge_params(bit_params, cond_params)
        bit_cols.append(f"({' + '.join(terms) if terms else '0::int8'}) AS bits{w}")
    return bit_cols, bit_params


def _rollup_multi_sql(
    *, tenant_id: int, as_ofs: Sequence[datetime], plan: _Plan, id_range: tuple[int, int]
) -> tuple[str, Params]:
    """Rollup rows per (customer, name) for several as-of times in one scan: `customer_id,
    bits0.., w<K>_<D> (full days of window D before cut-off K), last<K> (epoch, NaN if none)`.
    Each cut-off sees only days before its own date; its edges come from raw rows.
    Parameters: `tenant_id`, `max_day`, `roll_from`, per cut-off K `cK_today` and `cK_wD_first_day`."""
    cols = []
    params: Params = {"tenant_id": tenant_id}
    bounds = []
    for k, as_of in enumerate(as_ofs):
        today = _utc(as_of).date()
        bounds.append(today)
        params[f"c{k}_today"] = today
        for d in plan.windows:
            if d == 1:
                cols.append(f"0 AS w{k}_1")
                continue
            cols.append(
                f"coalesce(sum(d.count) FILTER (WHERE d.day >= %(c{k}_w{d}_first_day)s "
                f"AND d.day < %(c{k}_today)s), 0)::int AS w{k}_{d}"
            )
            params[f"c{k}_w{d}_first_day"] = today - timedelta(days=d - 1)
        if plan.needs_last:
            cols.append(f"max(d.last_at) FILTER (WHERE d.day < %(c{k}_today)s) AS last{k}")
    where = "d.tenant_id = %(tenant_id)s AND d.day < %(max_day)s"
    params["max_day"] = max(bounds)
    if not plan.needs_last:
        where += " AND d.day >= %(roll_from)s"
        params["roll_from"] = min(bounds) - timedelta(days=max(plan.windows) - 1)
    f_sql, f_params = _customer_filter("d.customer_id", None, id_range)
    bit_cols, bit_params = _bits_sql(plan)
    out = ["u.customer_id", *bit_cols]
    for k in range(len(as_ofs)):
        out += [f"u.w{k}_{d}" for d in plan.windows]
        if plan.needs_last:
            out.append(f"coalesce(extract(epoch FROM u.last{k})::float8, 'NaN') AS last{k}")
    sql = (
        f"SELECT {', '.join(out)} FROM (SELECT d.customer_id, d.name, {', '.join(cols)} "  # noqa: S608
        f"FROM {DAILY_SOURCE} d WHERE {where}{f_sql} GROUP BY d.customer_id, d.name) u"
    )
    return sql, merge_params(params, bit_params, f_params)


def features_query(
    *,
    tenant_id: int,
    as_of: datetime,
    metrics: Sequence[Metric],
    customer_ids: Sequence[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> tuple[str, Params, list[str]]:
    """SQL selecting `customer_id` and m0..mN (one per metric, in order) as of `as_of`, with
    its named parameters (`proactive.sql`).

    Numeric metrics are double precision (NULL when undefined), attribute.KEY is jsonb.
    `id_range` is inclusive. Wrap it as a subquery: SELECT ... FROM (sql) f WHERE ..., merging
    the outer statement's parameters with `merge_params` (a name bound twice to different values
    raises). Names used: `tenant_id`, `as_of`, `customer_ids`, `id_lo`, `id_hi`, `today`,
    `today_start`, `roll_from`, and ones starting with `w<D>_`, `p<K>_` and `m<I>_` (I: metric).
    For conditions over a few metrics; `compute_features` pivots the default set in numpy.
    """
    as_of = _utc(as_of)
    plan = _Plan.of(metrics)
    aliases = [f"m{i}" for i in range(len(metrics))]
    params: Params = {"tenant_id": tenant_id, "as_of": as_of}
    agg_sql = ""
    agg_cols: dict[tuple[str, str], str] = {}
    if plan.needs_signals:
        rows_sql, rows_params = _signal_rows_sql(
            tenant_id=tenant_id, as_of=as_of, plan=plan, customer_ids=customer_ids, id_range=id_range
        )
        l2_cols: list[str] = []

        def need(pattern: str, what: str) -> str:
            key = (pattern, what)
            if key not in agg_cols:
                alias = f"a{len(agg_cols)}"
                fn = "max(u.last_at)" if what == "last" else f"sum(u.{what})"
                bit = plan.bit(pattern)
                filt = "" if bit is None else f" FILTER (WHERE u.bits{bit[0]} & {bit[1]} <> 0)"
                l2_cols.append(f"{fn}{filt} AS {alias}")
                agg_cols[key] = alias
            return agg_cols[key]

        for m in metrics:
            if m.kind is Kind.COUNT:
                need(_pattern(m), f"w{m.days}")
            elif m.kind is Kind.TREND:
                need(_pattern(m), f"w{TREND_RECENT}")
                need(_pattern(m), f"w{TREND_BASE}")
            elif m.kind is Kind.DAYS_SINCE_LAST:
                need(_pattern(m), "last")
        # OFFSET 0 keeps the row subquery from being flattened, which would inline the bit
        # expressions into every aggregate's filter (measured 6x slower).
        agg_sql = (
            f"LEFT JOIN (SELECT u.customer_id, {', '.join(l2_cols)} FROM ({rows_sql} OFFSET 0) u "  # noqa: S608
            f"GROUP BY u.customer_id) a ON a.customer_id = c.id"
        )
        params = merge_params(params, rows_params)

    # count_since(P, S): raw rows in [S, as_of] through the (tenant, timestamp) index, one join each.
    since_joins: list[str] = []
    for i, m in enumerate(metrics):
        if m.kind is Kind.COUNT_SINCE:
            cond, cond_params = _match("s.name", _pattern(m), f"m{i}")
            f_sql, f_params = _customer_filter("(s.customer_id + 0)", customer_ids, id_range)
            # Materialised: with stale statistics the planner otherwise re-ran the scan per customer.
            since_joins.append(
                f"LEFT JOIN (WITH x AS MATERIALIZED (SELECT s.customer_id, count(*) AS n "  # noqa: S608
                "FROM proactive_signal s WHERE s.tenant_id = %(tenant_id)s "
                f"AND s.timestamp >= %(m{i}_since)s AND s.timestamp <= %(as_of)s AND {cond}{f_sql} "
                f"GROUP BY s.customer_id) SELECT * FROM x) cs{i} ON cs{i}.customer_id = c.id"
            )
            params = merge_params(params, {f"m{i}_since": m.since}, cond_params, f_params)

    select_cols: list[str] = ["c.id AS customer_id"]
    needs_risk = False
    for i, (alias, m) in enumerate(zip(aliases, metrics, strict=True)):
        if m.kind is Kind.COUNT_SINCE:
            expr = f"coalesce(cs{i}.n, 0)::float8"
        elif m.kind is Kind.COUNT:
            expr = f"coalesce(a.{agg_cols[(_pattern(m), f'w{m.days}')]}, 0)::float8"
        elif m.kind is Kind.TREND:
            c7 = f"coalesce(a.{agg_cols[(_pattern(m), f'w{TREND_RECENT}')]}, 0)"
            c35 = f"coalesce(a.{agg_cols[(_pattern(m), f'w{TREND_BASE}')]}, 0)"
            expr = f"(({c7} + 1)::float8 / (({c35} - {c7})::float8 / 4 + 1))"
        elif m.kind is Kind.DAYS_SINCE_LAST:
            expr = f"(extract(epoch FROM (%(as_of)s - a.{agg_cols[(_pattern(m), 'last')]})) / 86400)::float8"
        elif m.kind is Kind.DAYS_SINCE_SIGNUP:
            expr = "(extract(epoch FROM (%(as_of)s - c.signed_up_at)) / 86400)::float8"
        elif m.kind is Kind.RISK_SCORE:
            expr = "rs.score::float8"
            needs_risk = True
        else:
            expr = f"(c.attributes -> %(m{i}_key)s)"
            params = merge_params(params, {f"m{i}_key": _key(m)})
        select_cols.append(f"{expr} AS {alias}")

    risk_sql = ""
    if needs_risk:
        risk_sql = (
            "LEFT JOIN proactive_riskscore rs ON rs.tenant_id = %(tenant_id)s AND rs.customer_id = c.id"
        )
    where_sql, where_params = _customer_filter("c.id", customer_ids, id_range)
    sql = (
        f"SELECT {', '.join(select_cols)} FROM proactive_customer c {agg_sql} {' '.join(since_joins)} "  # noqa: S608
        f"{risk_sql} WHERE c.tenant_id = %(tenant_id)s{where_sql}"
    )
    return sql, merge_params(params, where_params), aliases


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


@contextmanager
def feature_session() -> Iterator[CursorWrapper]:
    """A cursor in a transaction tuned for the feature queries: enough work_mem that the
    per-(customer, name) hash aggregate does not spill to disk (it did at the default 4 MB),
    no JIT (compiling the aggregate expressions cost more than it saved), and costs for cached data."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '128MB'")
        cur.execute("SET LOCAL jit = off")
        # Rollups of a customer-id range are spread over the table's pages (rows arrive in time
        # order); with the default random_page_cost the planner read the whole table for every
        # chunk (2.3 s per 20k customers at 10M signals) instead of a bitmap scan (1.7 s).
        cur.execute("SET LOCAL random_page_cost = 1.1")
        yield cur


_SEND = {"int8": ("int8send", ">i8"), "int4": ("int4send", ">i4"), "float8": ("float8send", ">f8")}


def _packed(
    cur: CursorWrapper, sql: str, params: Params, columns: Sequence[tuple[str, str]]
) -> dict[str, np.ndarray]:
    """Columns of `sql` (NOT NULL int8/int4/float8) as numpy arrays, fetched as one row of
    packed bytea, `string_agg(int8send(x), '')` per column: no Python object per value.
    (Tuples cost ~1 s per 100k rows x 80 columns; COPY sends one message per row, ~15 us each
    through psycopg.) All aggregates of one node see the rows in the same order."""
    aggs = ", ".join(f"string_agg({_SEND[typ][0]}(q.{name}), ''::bytea)" for name, typ in columns)
    cur.execute(f"SELECT count(*), {aggs} FROM ({sql}) q", params)  # noqa: S608
    row = cur.fetchone()
    out = {}
    for (name, typ), blob in zip(columns, row[1:], strict=True):
        values = np.frombuffer(bytes(blob or b""), dtype=_SEND[typ][1])
        if len(values) != row[0]:
            raise ValueError(f"column {name} has NULLs")
        out[name] = values.astype(np.float64 if typ == "float8" else np.int64)
    return out


def signal_aggregates(
    cur: CursorWrapper,
    *,
    tenant_id: int,
    as_of: datetime,
    plan: _Plan,
    customer_ids: np.ndarray,
    id_range: tuple[int, int],
    restrict: Sequence[int] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Per (pattern, "w<D>" or "last") an array aligned with the sorted `customer_ids`: window
    counts (0 when none) and the latest matching timestamp in epoch seconds (NaN when none)."""
    sql, params = _signal_rows_sql(
        tenant_id=tenant_id, as_of=as_of, plan=plan, customer_ids=restrict, id_range=id_range, last_epoch=True
    )
    words = [f"bits{w}" for w in range(plan.words)]
    rows = _packed(
        cur, sql, params,
        [("customer_id", "int8"), *((w, "int8") for w in words), *((f"w{d}", "int4") for d in plan.windows),
         ("last_epoch", "float8")],
    )  # fmt: skip
    return _pivot(
        plan, customer_ids, rows["customer_id"], [rows[w] for w in words],
        {d: rows[f"w{d}"] for d in plan.windows}, rows["last_epoch"],
    )  # fmt: skip


def _pivot(
    plan: _Plan,
    customer_ids: np.ndarray,
    got: np.ndarray,
    bits: list[np.ndarray],
    windows: dict[int, np.ndarray],
    last: np.ndarray,
) -> dict[tuple[str, str], np.ndarray]:
    """Sum (and max) the per-(customer, name) rows of each pattern into per-customer arrays."""
    n = len(customer_ids)
    idx = np.searchsorted(customer_ids, got)
    known = idx < n
    known[known] = customer_ids[idx[known]] == got[known]
    idx = idx[known]
    bits = [b[known] for b in bits]
    windows = {d: w[known].astype(np.float64) for d, w in windows.items()}
    last = last[known]
    out: dict[tuple[str, str], np.ndarray] = {}
    for pattern in ["*", *plan.patterns]:
        bit = plan.bit(pattern)
        sel = np.ones(len(idx), dtype=bool) if bit is None else (bits[bit[0]] & bit[1]) != 0
        where = idx[sel]
        for d in plan.windows:
            out[(pattern, f"w{d}")] = np.bincount(where, weights=windows[d][sel], minlength=n)
        if plan.needs_last:
            latest = np.full(n, np.nan)
            np.fmax.at(latest, where, last[sel])  # fmax: NaN means "no signal", not "unknown"
            out[(pattern, "last")] = latest
    return out


def _attribute_sql(key: str, profile: tuple[str, list], name: str) -> list[tuple[str, Params]]:
    """float8 expressions with their parameters for one attribute (NULL when undefined): the
    number (booleans as 0/1) for numeric keys, one 0/1 column per category otherwise.
    Parameters: `NAME_key` and, per category J, `NAME_catJ`."""
    v = f"(c.attributes -> %({name}_key)s)"
    if profile[0] == "numeric":
        # JSON numbers beyond float8's range would make the cast fail; they are no feature.
        return [
            (
                f"CASE jsonb_typeof({v}) WHEN 'boolean' THEN ({v})::boolean::int::float8 "
                f"WHEN 'number' THEN CASE WHEN abs(({v})::numeric) < 1e300 THEN ({v})::float8 END END",
                {f"{name}_key": key},
            )
        ]
    return [
        (
            f"CASE WHEN coalesce(jsonb_typeof({v}), 'null') = 'null' THEN NULL "
            f"WHEN {v} = to_jsonb(%({name}_cat{j})s::text) THEN 1 ELSE 0 END::float8",
            {f"{name}_key": key, f"{name}_cat{j}": cat},
        )
        for j, cat in enumerate(profile[1])
    ]


def _attribute_width(profile: tuple[str, list]) -> int:
    """How many feature columns an attribute has (`_attribute_sql`'s expressions)."""
    return 1 if profile[0] == "numeric" else len(profile[1])


def _customer_columns(
    cur: CursorWrapper,
    *,
    tenant_id: int,
    metrics: Sequence[Metric],
    profile: dict[str, tuple[str, list]],
    id_range: tuple[int, int],
    restrict: Sequence[int] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(sorted ids, columns) of the customers in range: "signup" and "risk" (epoch seconds and
    score, NaN when unknown) and "a0".. one float column per attribute feature column."""
    cols = ["c.id AS id", "coalesce(extract(epoch FROM c.signed_up_at)::float8, 'NaN') AS signup"]
    params: Params = {"tenant_id": tenant_id}
    needs_risk = any(m.kind is Kind.RISK_SCORE for m in metrics)
    cols.append("coalesce(rs.score, 'NaN')::float8 AS risk" if needs_risk else "'NaN'::float8 AS risk")
    n_attr = 0
    for i, m in enumerate(metrics):
        if m.kind is Kind.ATTRIBUTE:
            for expr, expr_params in _attribute_sql(_key(m), profile[_key(m)], f"m{i}"):
                cols.append(f"coalesce({expr}, 'NaN') AS a{n_attr}")
                params = merge_params(params, expr_params)
                n_attr += 1
    risk_join = (
        " LEFT JOIN proactive_riskscore rs ON rs.tenant_id = c.tenant_id AND rs.customer_id = c.id"
        if needs_risk
        else ""
    )
    where, where_params = _customer_filter("c.id", restrict, id_range)
    sql = (
        f"SELECT {', '.join(cols)} FROM proactive_customer c{risk_join} "  # noqa: S608
        f"WHERE c.tenant_id = %(tenant_id)s{where}"
    )
    names = [("id", "int8"), ("signup", "float8"), ("risk", "float8")]
    packed = _packed(
        cur, sql, merge_params(params, where_params), names + [(f"a{i}", "float8") for i in range(n_attr)]
    )
    order = np.argsort(packed["id"], kind="stable")
    return packed["id"][order], {k: v[order] for k, v in packed.items() if k != "id"}


def _feature_matrix(
    cur: CursorWrapper,
    *,
    tenant_id: int,
    as_of: datetime,
    metrics: Sequence[Metric],
    profile: dict[str, tuple[str, list]],
    width: int,
    id_range: tuple[int, int],
    restrict: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted customer ids, values) of one chunk, in the column order of compute_features."""
    as_of = _utc(as_of)
    now = as_of.timestamp()
    ids, cols = _customer_columns(
        cur, tenant_id=tenant_id, metrics=metrics, profile=profile, id_range=id_range, restrict=restrict
    )
    if not len(ids):
        return ids, np.empty((0, width), dtype=np.float64)
    plan = _Plan.of(metrics)
    agg: dict[tuple[str, str], np.ndarray] = {}
    if plan.needs_signals:
        agg = signal_aggregates(
            cur, tenant_id=tenant_id, as_of=as_of, plan=plan, customer_ids=ids, id_range=id_range,
            restrict=restrict,
        )  # fmt: skip
    return ids, _assemble(metrics, profile, width, cols, agg, now)


def _assemble(
    metrics: Sequence[Metric],
    profile: dict[str, tuple[str, list]],
    width: int,
    cols: dict[str, np.ndarray],
    agg: dict[tuple[str, str], np.ndarray],
    now: float,
) -> np.ndarray:
    """The feature columns, in the order of `column_names`, from customer columns and pattern sums."""
    out = np.empty((len(cols["signup"]), width), dtype=np.float64)
    col, attr_col = 0, 0
    for m in metrics:
        if m.kind is Kind.ATTRIBUTE:
            for _ in range(_attribute_width(profile[_key(m)])):
                out[:, col] = cols[f"a{attr_col}"]
                col += 1
                attr_col += 1
            continue
        if m.kind is Kind.COUNT:
            out[:, col] = agg[(_pattern(m), f"w{m.days}")]
        elif m.kind is Kind.TREND:
            c7, c35 = agg[(_pattern(m), f"w{TREND_RECENT}")], agg[(_pattern(m), f"w{TREND_BASE}")]
            out[:, col] = (c7 + 1) / ((c35 - c7) / 4 + 1)
        elif m.kind is Kind.DAYS_SINCE_LAST:
            out[:, col] = (now - agg[(_pattern(m), "last")]) / 86400
        elif m.kind is Kind.DAYS_SINCE_SIGNUP:
            out[:, col] = (now - cols["signup"]) / 86400
        elif m.kind is Kind.RISK_SCORE:
            out[:, col] = cols["risk"]
        else:
            raise ValueError(f"{m} is for conditions (features_query), not feature frames")
        col += 1
    return out


def column_names(metrics: Sequence[Metric], profile: dict[str, tuple[str, list]]) -> list[str]:
    """Frame column names: one per metric, one per category for categorical attributes."""
    names: list[str] = []
    for m in metrics:
        if m.kind is Kind.ATTRIBUTE and profile[_key(m)][0] == "categorical":
            names.extend(f"attribute.{m.key}={v}" for v in profile[_key(m)][1])
        else:
            names.append(str(m))
    return names


def compute_features(
    *,
    tenant: Tenant,
    as_of: datetime,
    metrics: Sequence[Metric] | None = None,
    customer_ids: Sequence[int] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> FeatureFrame:
    """Feature matrix for the tenant's customers as of `as_of` (default feature set when
    `metrics` is None). Attributes: numbers/booleans as floats, low-cardinality strings
    one-hot as "attribute.KEY=value" (NaN when the customer has no value).

    SQL aggregates per (customer, signal name) and marks each row's matching patterns in a
    bitmask; numpy sums those rows into one column per metric (one SQL aggregate per metric
    cost ~4 us a row here, and fetching ~80 columns as Python tuples cost more)."""
    if metrics is None:
        metrics = default_metrics(tenant, as_of)
    metrics = list(metrics)
    attr_keys = [_key(m) for m in metrics if m.kind is Kind.ATTRIBUTE]
    profile = _attribute_profile(tenant.pk, attr_keys)
    names = column_names(metrics, profile)

    with feature_session() as cur:
        if customer_ids is not None:
            ids = sorted({int(i) for i in customer_ids})
        else:
            cur.execute("SELECT id FROM proactive_customer WHERE tenant_id = %s ORDER BY id", [tenant.pk])
            ids = [r[0] for r in cur.fetchall()]
        id_parts, value_parts = [], []
        for i in range(0, len(ids), chunk_size):
            part = ids[i : i + chunk_size]
            got, values = _feature_matrix(
                cur, tenant_id=tenant.pk, as_of=as_of, metrics=metrics, profile=profile, width=len(names),
                id_range=(part[0], part[-1]), restrict=part if customer_ids is not None else None,
            )  # fmt: skip
            if len(got):
                id_parts.append(got)
                value_parts.append(values)
    if not id_parts:
        return FeatureFrame(np.empty(0, dtype=np.int64), names, np.empty((0, len(names))))
    return FeatureFrame(np.concatenate(id_parts), names, np.vstack(value_parts))


def range_matrix(
    *, tenant: Tenant, as_of: datetime, metrics: Sequence[Metric], lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features (no attributes) of every customer with lo <= id <= hi: (ids, values)."""
    metrics = list(metrics)
    if any(m.kind is Kind.ATTRIBUTE for m in metrics):
        raise ValueError("range_matrix computes numeric metrics only")
    with feature_session() as cur:
        return _feature_matrix(
            cur, tenant_id=tenant.pk, as_of=as_of, metrics=metrics, profile={}, width=len(metrics),
            id_range=(lo, hi),
        )  # fmt: skip


def range_matrices(
    *, tenant: Tenant, as_ofs: Sequence[datetime], metrics: Sequence[Metric], lo: int, hi: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numeric features of every customer with lo <= id <= hi as of each of `as_ofs`: (ids, one
    matrix per as-of). The rollups are read once for all as-of times (conditional aggregates per
    cut-off); only each cut-off's partial edge days are read per cut-off from raw signals."""
    metrics = list(metrics)
    if any(m.kind is Kind.ATTRIBUTE for m in metrics):
        raise ValueError("range_matrices computes numeric metrics only")
    width = len(metrics)
    plan = _Plan.of(metrics)
    with feature_session() as cur:
        ids, cols = _customer_columns(
            cur, tenant_id=tenant.pk, metrics=metrics, profile={}, id_range=(lo, hi), restrict=None
        )
        if not len(ids) or not as_ofs:
            return ids, [np.empty((len(ids), width)) for _ in as_ofs]
        if not plan.needs_signals:
            return ids, [_assemble(metrics, {}, width, cols, {}, _utc(a).timestamp()) for a in as_ofs]
        words = [f"bits{w}" for w in range(plan.words)]
        spec = [("customer_id", "int8"), *((w, "int8") for w in words)]
        for k in range(len(as_ofs)):
            spec += [(f"w{k}_{d}", "int4") for d in plan.windows]
            spec += [(f"last{k}", "float8")] if plan.needs_last else []
        roll = _packed(
            cur, *_rollup_multi_sql(tenant_id=tenant.pk, as_ofs=as_ofs, plan=plan, id_range=(lo, hi)), spec
        )
        raw_spec = [("customer_id", "int8"), *((w, "int8") for w in words)]
        raw_spec += [(f"w{d}", "int4") for d in plan.windows] + [("last_epoch", "float8")]
        matrices = []
        for k, as_of in enumerate(as_ofs):
            raw_sql, raw_params = _signal_rows_sql(
                tenant_id=tenant.pk,
                as_of=as_of,
                plan=plan,
                customer_ids=None,
                id_range=(lo, hi),
                rollups=False,
                last_epoch=True,
            )
            raw = _packed(cur, raw_sql, raw_params, raw_spec)
            nan = np.full(len(roll["customer_id"]), np.nan)
            agg = _pivot(
                plan, ids,
                np.concatenate([roll["customer_id"], raw["customer_id"]]),
                [np.concatenate([roll[w], raw[w]]) for w in words],
                {d: np.concatenate([roll[f"w{k}_{d}"], raw[f"w{d}"]]) for d in plan.windows},
                np.concatenate([roll.get(f"last{k}", nan), raw["last_epoch"]]),
            )  # fmt: skip
            matrices.append(_assemble(metrics, {}, width, cols, agg, _utc(as_of).timestamp()))
    return ids, matrices


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
            f"SELECT name, total FROM {NAMES_SOURCE} n WHERE first_seen <= %(as_of)s "  # noqa: S608
            "ORDER BY total DESC, name",
            {"tenant_id": tenant.pk, "as_of": as_of},
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
