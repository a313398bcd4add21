"""Model features from a customer's whole activity history, point-in-time, from the daily rollups.

These are for the risk model only (playbook conditions use the metric grammar of
`proactive.features.metrics`). As of T they read the rollup days strictly before T's UTC day,
so nothing recorded after T is seen (same-day signals reach the model through the grammar's
`count(P, 1)` and `days_since_last(P)`, which read raw rows up to T):

    active_days(P, D)        distinct days with a matching signal among the D days before T's day
    active_days(P)           the same over the whole history
    days_since_first(P)      days from the first active day to T's day (NaN when none)
    days_since_active(P)     days from the last active day to T's day (NaN when none)
    gap_mean(P), gap_std(P)  mean and standard deviation of the gaps between active days
    recency_ratio(P)         days since the last active day / gap_mean(P): "late" relative to the
                             customer's own rhythm (1 = as usual, 3 = three usual gaps overdue)
    per_day(P)               active_days(P) / (days_since_first(P) + 1): activity per day of tenure
    active_trend(P, S, L)    (active days in S + 1) / (active days in L * S / L + 1): the recent span
                             against the longer one, 1 = steady

P is a signal name, a prefix ending in `*`, or several of them joined by `|` (any of them).

One scan per chunk of customers serves every as-of time (training snapshots), like
`compute.range_matrices`: rows (customer, day, pattern bits) are fetched packed and reduced per
cut-off in numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from proactive.features.compute import _match, _packed, feature_session
from proactive.rollups import DAILY_SOURCE
from proactive.sql import Params, merge_params

ACTIVE_WINDOWS = (30, 90, 365)
TREND_SPANS = ((30, 90), (90, 365))
EPOCH = date(1970, 1, 1)

_NAME_RE = re.compile(r"^(?P<fn>[a-z_]+)\((?P<pattern>[^,()]+)(?:, (?P<a>\d+))?(?:, (?P<b>\d+))?\)$")
KINDS = (
    "active_days",
    "days_since_first",
    "days_since_active",
    "gap_mean",
    "gap_std",
    "recency_ratio",
    "per_day",
    "active_trend",
)


@dataclass(frozen=True)
class HistoryFeature:
    kind: str
    pattern: str
    a: int | None = None
    b: int | None = None

    def __str__(self) -> str:
        args = [self.pattern] + [str(v) for v in (self.a, self.b) if v is not None]
        return f"{self.kind}({', '.join(args)})"


def parse_history(name: str) -> HistoryFeature | None:
    """The history feature a model feature name stands for, or None (a grammar metric)."""
    m = _NAME_RE.match(name)
    if m is None or m["fn"] not in KINDS:
        return None
    a = int(m["a"]) if m["a"] else None
    b = int(m["b"]) if m["b"] else None
    return HistoryFeature(m["fn"], m["pattern"], a, b)


def history_features(patterns: Sequence[str]) -> list[HistoryFeature]:
    """The default history set for each pattern."""
    out: list[HistoryFeature] = []
    for p in dict.fromkeys(patterns):
        out += [HistoryFeature("active_days", p, d) for d in ACTIVE_WINDOWS]
        out += [HistoryFeature("active_days", p)]
        out += [
            HistoryFeature(k, p)
            for k in ("days_since_first", "days_since_active", "gap_mean", "gap_std", "recency_ratio")
        ]
        out += [HistoryFeature("per_day", p)]
        out += [HistoryFeature("active_trend", p, s, long) for s, long in TREND_SPANS]
    return out


def _day_number(as_of: datetime) -> int:
    return (as_of.astimezone(UTC).date() - EPOCH).days


def history_matrices(
    *, tenant_id: int, as_ofs: Sequence[datetime], features: Sequence[HistoryFeature], ids: np.ndarray
) -> list[np.ndarray]:
    """One (len(ids), len(features)) matrix per as-of time for the sorted customer ids `ids`
    (a contiguous id range of the tenant's customers)."""
    n = len(ids)
    if not len(features) or not n:
        return [np.empty((n, len(features))) for _ in as_ofs]
    patterns = list(dict.fromkeys(f.pattern for f in features))
    terms = []
    params: Params = {
        "tenant_id": tenant_id,
        "id_lo": int(ids[0]),
        "id_hi": int(ids[-1]),
        "last_day": max(as_ofs).astimezone(UTC).date(),
    }
    for k, pattern in enumerate(patterns):
        alternatives = [_match("d.name", alt, f"p{k}_{j}") for j, alt in enumerate(pattern.split("|"))]
        cond = "(" + " OR ".join(c for c, _ in alternatives) + ")"
        terms.append(f"CASE WHEN {cond} THEN {1 << k}::int8 ELSE 0::int8 END")
        params = merge_params(params, *(ps for _, ps in alternatives))
    bits_sql = " + ".join(terms)
    sql = (
        "SELECT d.customer_id, (d.day - DATE '1970-01-01')::int8 AS day, "  # noqa: S608
        f"bit_or({bits_sql}) AS bits FROM {DAILY_SOURCE} d "
        "WHERE d.tenant_id = %(tenant_id)s AND d.customer_id BETWEEN %(id_lo)s AND %(id_hi)s "
        "AND d.day < %(last_day)s GROUP BY d.customer_id, d.day"
    )
    with feature_session() as cur:
        rows = _packed(cur, sql, params, [("customer_id", "int8"), ("day", "int8"), ("bits", "int8")])
    order = np.lexsort((rows["day"], rows["customer_id"]))
    cust, day, bits = rows["customer_id"][order], rows["day"][order], rows["bits"][order]
    pos = np.searchsorted(ids, cust)
    pos = np.minimum(pos, n - 1)
    known = ids[pos] == cust
    pos, day, bits = pos[known], day[known], bits[known]

    per_pattern = {}
    for k, pattern in enumerate(patterns):
        sel = (bits & (1 << k)) != 0
        p_pos, p_day = pos[sel], day[sel].astype(np.float64)
        same = np.zeros(len(p_pos), dtype=bool)
        same[1:] = p_pos[1:] == p_pos[:-1]
        gap = np.zeros(len(p_pos))
        gap[1:] = p_day[1:] - p_day[:-1]
        gap[~same] = 0.0
        per_pattern[pattern] = (p_pos, p_day, gap, same)

    out = []
    for as_of in as_ofs:
        today = float(_day_number(as_of))
        cols: dict[tuple, np.ndarray] = {}
        for pattern, (p_pos, p_day, gap, same) in per_pattern.items():
            before = p_day < today
            where = p_pos[before]
            total = np.bincount(where, minlength=n).astype(np.float64)
            for d in {*ACTIVE_WINDOWS, *(v for s in TREND_SPANS for v in s), *(f.a for f in features if f.a)}:
                w = before & (p_day >= today - d)
                cols[(pattern, "active", d)] = np.bincount(p_pos[w], minlength=n).astype(np.float64)
            first = np.full(n, np.nan)
            last = np.full(n, np.nan)
            np.fmin.at(first, where, p_day[before])
            np.fmax.at(last, where, p_day[before])
            g = before & same
            gsum = np.bincount(p_pos[g], weights=gap[g], minlength=n)
            gsq = np.bincount(p_pos[g], weights=gap[g] ** 2, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                gaps = total - 1
                mean = np.where(gaps > 0, gsum / np.maximum(gaps, 1), np.nan)
                var = np.where(gaps > 0, gsq / np.maximum(gaps, 1) - mean**2, np.nan)
                since_first = today - first
                cols[(pattern, "total")] = total
                cols[(pattern, "since_first")] = since_first
                cols[(pattern, "since_active")] = today - last
                cols[(pattern, "gap_mean")] = mean
                cols[(pattern, "gap_std")] = np.sqrt(np.maximum(var, 0))
                cols[(pattern, "recency_ratio")] = (today - last) / mean
                cols[(pattern, "per_day")] = np.where(np.isnan(first), 0.0, total / (since_first + 1))
        matrix = np.empty((n, len(features)))
        for j, f in enumerate(features):
            if f.kind == "active_days":
                matrix[:, j] = cols[(f.pattern, "total")] if f.a is None else cols[(f.pattern, "active", f.a)]
            elif f.kind == "days_since_first":
                matrix[:, j] = cols[(f.pattern, "since_first")]
            elif f.kind == "days_since_active":
                matrix[:, j] = cols[(f.pattern, "since_active")]
            elif f.kind == "active_trend":
                short, long = cols[(f.pattern, "active", f.a)], cols[(f.pattern, "active", f.b)]
                matrix[:, j] = (short + 1) / (long * f.a / f.b + 1)
            else:
                matrix[:, j] = cols[(f.pattern, f.kind)]
        out.append(matrix)
    return out
