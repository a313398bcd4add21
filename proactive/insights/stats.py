"""Evidence for one candidate: rate, lift with a customer-clustered interval, p-value, q-values.

Rows are (customer, cut-off) pairs, so a customer appears once per cut-off and the rows are not
independent. The interval and the test use the cluster-robust (sandwich) variance of the log
ratio with customers as clusters: each customer's rows enter as one influence term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Evidence:
    rows: int  # matching (customer, cut-off) rows
    reached: int  # of which reached the target within the horizon
    rate: float
    base_rate: float
    lift: float
    ci95: tuple[float, float]
    p_value: float  # one-sided: matching rows reach the target more often than the others


@dataclass(frozen=True)
class Clusters:
    """Rows grouped by customer, computed once per set of rows."""

    index: np.ndarray  # cluster of each row, 0..n-1
    n: int
    rows: np.ndarray  # rows per cluster
    positives: np.ndarray  # target rows per cluster
    y: np.ndarray

    @classmethod
    def of(cls, customer_ids: np.ndarray, y: np.ndarray) -> Clusters:
        _, index = np.unique(customer_ids, return_inverse=True)
        n = int(index.max()) + 1 if len(index) else 0
        return cls(
            index,
            n,
            np.bincount(index, minlength=n).astype(np.float64),
            np.bincount(index, weights=y, minlength=n),
            y,
        )


def evidence(clusters: Clusters, match: np.ndarray, *, min_rows: int, min_reached: int) -> Evidence:
    c = clusters
    m_i = np.bincount(c.index, weights=match.astype(np.float64), minlength=c.n)
    ym_i = np.bincount(c.index, weights=c.y * match, minlength=c.n)
    big_m, y_m = float(m_i.sum()), float(ym_i.sum())
    big_n, y_all = float(c.rows.sum()), float(c.positives.sum())
    base = y_all / big_n if big_n else 0.0
    rate = y_m / big_m if big_m else 0.0
    if big_m < min_rows or y_m < min_reached or base <= 0 or rate <= 0 or c.n < 2:
        return Evidence(int(big_m), int(y_m), rate, base, rate / base if base else 0.0, (0.0, 0.0), 1.0)
    small = c.n / (c.n - 1)
    # Lift against everyone (the contract's lift) and its interval.
    infl = (ym_i - rate * m_i) / y_m - (c.positives - base * c.rows) / y_all
    se = math.sqrt(small * float(np.dot(infl, infl)))
    lift = rate / base
    ci = (lift * math.exp(-Z95 * se), lift * math.exp(Z95 * se))
    # The test compares matching with non-matching rows (the lift against everyone includes them).
    u_i, yu_i = c.rows - m_i, c.positives - ym_i
    big_u, y_u = big_n - big_m, y_all - y_m
    if big_u <= 0:
        return Evidence(int(big_m), int(y_m), rate, base, lift, ci, 1.0)
    y_u = max(y_u, 0.5)  # every target row matched: a continuity half keeps the ratio finite
    rate_u = y_u / big_u
    infl_rr = (ym_i - rate * m_i) / y_m - (yu_i - rate_u * u_i) / y_u
    se_rr = math.sqrt(small * float(np.dot(infl_rr, infl_rr)))
    z = math.log(rate / rate_u) / se_rr if se_rr > 0 else 0.0
    return Evidence(int(big_m), int(y_m), rate, base, lift, ci, float(norm.sf(z)))


def bh_qvalues(p_values: np.ndarray, tried: int) -> np.ndarray:
    """Benjamini-Hochberg q-values over `tried` hypotheses; those not listed count as p = 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = max(tried, len(p))
    if not len(p):
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, len(p) + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty_like(p)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def screen_z(match_pos: float, match_rows: float, all_pos: float, all_rows: float) -> float:
    """A quick two-proportion z (matching vs the rest) to rank candidates on the discovery rows."""
    rest_rows = all_rows - match_rows
    if match_rows <= 0 or rest_rows <= 0:
        return 0.0
    p = all_pos / all_rows
    if p <= 0 or p >= 1:
        return 0.0
    diff = match_pos / match_rows - (all_pos - match_pos) / rest_rows
    return diff / math.sqrt(p * (1 - p) * (1 / match_rows + 1 / rest_rows))
