"""The risk model's feature set: grammar metrics, history features, attributes and declared
numeric properties as of the cut-off, computed for id ranges.

A model stores its feature names; everything that trains, scores or explains a model goes
through `model_matrices`, so the same names always mean the same computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from accounts.models import Tenant
from proactive.features.attributes import (
    AttributeFeature,
    attribute_features,
    attribute_matrices,
    parse_attribute,
)
from proactive.features.compute import default_metrics, range_matrices
from proactive.features.history import HistoryFeature, history_features, history_matrices, parse_history
from proactive.features.metrics import Kind, Metric, parse_metric
from proactive.features.values import ValueFeature, parse_value, value_features, value_matrices
from proactive.scoring.baselines import fill_bgnbd
from proactive.scoring.labels import target_patterns

LONG_WINDOWS = (90, 365, 3650)  # 3650 days: the whole history of any real tenant
HISTORY_FAMILIES = 3


def grammar_metrics(tenant: Tenant, as_of: datetime) -> list[Metric]:
    """The default features minus what is not point-in-time: `attribute.KEY` metrics hold
    today's value (the model reads attributes as of the cut-off from their history instead,
    `proactive.features.attributes`), risk_score is our own output."""
    return [m for m in default_metrics(tenant, as_of) if m.kind not in (Kind.ATTRIBUTE, Kind.RISK_SCORE)]


def target_stream(tenant: Tenant) -> str:
    """The prediction target's patterns as one history pattern (any of them)."""
    return "|".join(target_patterns(tenant)) or "*"


def history_patterns(tenant: Tenant, metrics: Sequence[Metric]) -> list[str]:
    """Every signal, the prediction target's signals and the busiest families."""
    families = [m.pattern for m in metrics if m.kind is Kind.COUNT and m.days == 30 and m.pattern != "*"]
    patterns = ["*", target_stream(tenant), *families[:HISTORY_FAMILIES]]
    return list(dict.fromkeys(str(p) for p in patterns))


def model_feature_names(tenant: Tenant, as_of: datetime) -> list[str]:
    """The feature names a model trained as of `as_of` uses."""
    metrics = grammar_metrics(tenant, as_of)
    # Columns the tenant's own data defines: attributes as of the cut-off, declared numeric properties.
    tenant_defined = [str(f) for f in attribute_features(tenant_id=tenant.pk, as_of=as_of)]
    tenant_defined += [str(f) for f in value_features(tenant.numeric_properties or [])]
    if not any(m.kind is Kind.COUNT for m in metrics):
        return [str(m) for m in metrics] + tenant_defined
    patterns = history_patterns(tenant, metrics)
    for single in [q for p in patterns for q in p.split("|")]:
        metrics += [parse_metric(f"count({single}, {d})") for d in LONG_WINDOWS]
        metrics.append(parse_metric(f"days_since_last({single})"))
    names = [str(m) for m in dict.fromkeys(metrics)]
    return names + [str(f) for f in history_features(patterns)] + tenant_defined


@dataclass
class _Columns:
    """A model's feature names by where they are computed, with their column positions."""

    grammar: list[tuple[int, Metric]] = field(default_factory=list)
    history: list[tuple[int, HistoryFeature]] = field(default_factory=list)
    attributes: list[tuple[int, AttributeFeature]] = field(default_factory=list)
    values: list[tuple[int, ValueFeature]] = field(default_factory=list)


def _split(names: Sequence[str]) -> _Columns:
    out = _Columns()
    for j, name in enumerate(names):
        if name.startswith("bgnbd("):
            continue  # fitted, filled from the model's parameters by the caller
        feature = parse_history(name)
        attribute = parse_attribute(name)
        value = parse_value(name)
        if feature is not None:
            out.history.append((j, feature))
        elif value is not None:
            out.values.append((j, value))
        elif attribute is not None:
            out.attributes.append((j, attribute))
        else:
            out.grammar.append((j, parse_metric(name)))
    return out


def model_matrices(
    *, tenant: Tenant, as_ofs: Sequence[datetime], names: Sequence[str], lo: int, hi: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Features `names` of every customer with lo <= id <= hi as of each of `as_ofs`:
    (sorted ids, one matrix per as-of, columns in `names` order)."""
    cols = _split(names)
    ids, grammar_values = range_matrices(
        tenant=tenant, as_ofs=as_ofs, metrics=[m for _, m in cols.grammar], lo=lo, hi=hi
    )
    history_values = history_matrices(
        tenant_id=tenant.pk, as_ofs=as_ofs, features=[f for _, f in cols.history], ids=ids
    )
    attribute_values = attribute_matrices(
        tenant_id=tenant.pk, as_ofs=as_ofs, features=[f for _, f in cols.attributes], ids=ids
    )
    value_values = value_matrices(
        tenant_id=tenant.pk, as_ofs=as_ofs, features=[f for _, f in cols.values], ids=ids
    )
    out = []
    g_cols, h_cols = [j for j, _ in cols.grammar], [j for j, _ in cols.history]
    a_cols, v_cols = [j for j, _ in cols.attributes], [j for j, _ in cols.values]
    for g, h, a, v in zip(grammar_values, history_values, attribute_values, value_values, strict=True):
        matrix = np.full((len(ids), len(names)), np.nan)
        matrix[:, g_cols] = g
        matrix[:, h_cols] = h
        matrix[:, a_cols] = a
        matrix[:, v_cols] = v
        out.append(matrix)
    return ids, out


def model_rows(
    *,
    tenant: Tenant,
    as_of: datetime,
    names: Sequence[str],
    customer_ids: np.ndarray,
    fitted: dict | None = None,
    chunk: int = 20_000,
) -> np.ndarray:
    """Features `names` as of `as_of` for the given customers, in their order (a few customers,
    or the evaluation rows of one cut-off). `fitted` holds a model's fitted feature parameters
    (its calibration dict)."""
    wanted = np.unique(customer_ids)
    values = np.full((len(customer_ids), len(names)), np.nan)
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        ids, (matrix,) = model_matrices(
            tenant=tenant, as_ofs=[as_of], names=names, lo=int(part[0]), hi=int(part[-1])
        )
        pos = np.searchsorted(ids, customer_ids)
        pos = np.minimum(pos, max(len(ids) - 1, 0))
        hit = (ids[pos] == customer_ids) if len(ids) else np.zeros(len(customer_ids), dtype=bool)
        values[hit] = matrix[pos[hit]]
    fill_bgnbd(list(names), values, (fitted or {}).get("bgnbd"))
    return values
