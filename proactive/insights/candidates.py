"""Candidate conditions in the playbook grammar, with thresholds taken from the data.

A candidate is a conjunction of leaves `{"metric", "op", "value"}` over the snapshot columns;
its rows are evaluated in numpy with the semantics the compiled SQL of a playbook has (an
undefined value, NaN here and NULL there, never matches a leaf).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from proactive.features.metrics import Kind, Metric, parse_metric

COUNT_HIGH_QUANTILES = (0.0, 0.5, 0.8, 0.95)  # of the non-zero values: ">= 1", typical, heavy, extreme
COUNT_LOW_QUANTILES = (0.1, 0.25, 0.5)
RECENCY_LONG_QUANTILES = (0.5, 0.75, 0.9)
RECENCY_SHORT_QUANTILES = (0.1, 0.25)
TREND_DROP_QUANTILES = (0.05, 0.1, 0.25)
TREND_RISE_QUANTILES = (0.9, 0.97)
SIGNUP_EDGES = (0, 3, 7, 14, 21, 30, 60, 90, 180, 365, 730)
MAX_SHARE = 0.6  # a condition matching most customers describes them all, not a behaviour


@dataclass(frozen=True)
class Leaf:
    column: int  # column of the snapshot matrix
    metric: str
    op: str
    value: float | str

    def as_json(self) -> dict:
        value = self.value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return {"metric": self.metric, "op": self.op, "value": value}


@dataclass(frozen=True)
class Candidate:
    leaves: tuple[Leaf, ...]

    @property
    def condition(self) -> dict:
        leaves = [leaf.as_json() for leaf in self.leaves]
        return leaves[0] if len(leaves) == 1 else {"all": leaves}

    @property
    def metrics(self) -> set[str]:
        return {leaf.metric for leaf in self.leaves}

    @property
    def themes(self) -> frozenset[tuple[str, str]]:
        """What the condition is about: (signal family, up/down) per leaf, "signup" or the attribute.
        Conditions with the same themes and mostly the same customers tell one story."""
        out = set()
        for leaf in self.leaves:
            metric = parse_metric(leaf.metric)
            if metric.pattern is None:
                out.add((leaf.metric, ""))
                continue
            family = metric.pattern.split(".", 1)[0].rstrip("*") or "*"
            up = (leaf.op in ("gte", "gt")) != (metric.kind is Kind.DAYS_SINCE_LAST)
            if metric.kind is Kind.TREND:  # a change against the customer's own usual level
                out.add((family, "rising" if up else "falling"))
            else:
                out.add((family, "up" if up else "down"))
        return frozenset(out)

    def __and__(self, other: Candidate) -> Candidate:
        return Candidate(self.leaves + other.leaves)


def leaf_mask(col: np.ndarray, leaf: Leaf) -> np.ndarray:
    """Rows where the leaf holds; `col` is the leaf's column (NaN = undefined, never matches)."""
    with np.errstate(invalid="ignore"):
        if leaf.op == "gte":
            return col >= leaf.value
        if leaf.op == "lte":
            return col <= leaf.value
        if leaf.op == "lt":
            return col < leaf.value
        if leaf.op == "gt":
            return col > leaf.value
        if leaf.op == "eq":
            return col == 1.0  # one-hot column of an attribute value
    raise ValueError(f"unsupported op {leaf.op}")


def mask(candidate: Candidate, column: Callable[[Leaf], np.ndarray]) -> np.ndarray:
    out = leaf_mask(column(candidate.leaves[0]), candidate.leaves[0])
    for leaf in candidate.leaves[1:]:
        out &= leaf_mask(column(leaf), leaf)
    return out


def _ints(values: np.ndarray) -> list[int]:
    return sorted({int(math.ceil(v)) for v in values if np.isfinite(v)})


def _round2(values: np.ndarray) -> list[float]:
    return sorted({round(float(v), 2) for v in values if np.isfinite(v)})


def metric_candidates(metric: Metric, column: int, values: np.ndarray) -> list[Candidate]:
    """Single-metric candidates: thresholds at quantiles of the values on the discovery rows."""
    name = str(metric)
    defined = values[np.isfinite(values)]
    if not len(defined):
        return []
    out: list[Candidate] = []

    def add(op: str, value: float) -> None:
        out.append(Candidate((Leaf(column, name, op, float(value)),)))

    if metric.kind is Kind.COUNT:
        nonzero = defined[defined > 0]
        if len(nonzero):
            for t in _ints(np.quantile(nonzero, COUNT_HIGH_QUANTILES)):
                add("gte", max(t, 1))
        for t in _ints(np.quantile(defined, COUNT_LOW_QUANTILES)):
            if t >= 1:
                add("lt", t)
        if (defined == 0).any() and (defined > 0).any():
            add("lt", 1)
    elif metric.kind is Kind.DAYS_SINCE_LAST:
        for t in _ints(np.quantile(defined, RECENCY_LONG_QUANTILES)):
            if t >= 1:
                add("gte", t)
        for t in _ints(np.quantile(defined, RECENCY_SHORT_QUANTILES)):
            add("lte", max(t, 1))
    elif metric.kind is Kind.TREND:
        for ratio in _round2(np.quantile(defined, TREND_DROP_QUANTILES)):
            if ratio < 0.9:
                add("lte", ratio)
        for ratio in _round2(np.quantile(defined, TREND_RISE_QUANTILES)):
            if ratio > 1.5:
                add("gte", ratio)
    elif metric.kind is Kind.DAYS_SINCE_SIGNUP:
        lo, hi = float(defined.min()), float(defined.max())
        edges = [e for e in SIGNUP_EDGES if lo - 1 <= e <= hi + 1]
        for i, a in enumerate(edges):
            for b in edges[i + 1 : i + 3]:
                out.append(
                    Candidate((Leaf(column, name, "gte", float(a)), Leaf(column, name, "lte", float(b))))
                )
    return list(dict.fromkeys(out))


def attribute_candidates(key: str, columns: Sequence[tuple[int, str]]) -> list[Candidate]:
    """`attribute.KEY eq value` for each value of a low-cardinality attribute (one-hot columns)."""
    return [Candidate((Leaf(col, f"attribute.{key}", "eq", value),)) for col, value in columns]


def support_ok(matched: int, rows: int, min_rows: int) -> bool:
    return matched >= min_rows and matched <= MAX_SHARE * rows
