"""Training sets without leakage: snapshots of the default features at past cut-offs.

Cut-offs step back from `as_of - horizon` so every label window has fully elapsed by
`as_of`. The latest cut-offs are the validation slice; training cut-offs are purged so
that their label windows end before the first validation cut-off (no label of a
training row is observed after a validation feature was computed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from accounts.models import Tenant
from proactive.chunks import CHUNK_SIZE
from proactive.features.compute import compute_features, default_metrics, range_matrices, range_matrix
from proactive.features.metrics import Kind, Metric, parse_metric
from proactive.scoring import model as ml
from proactive.scoring.labels import customer_first_seen, labels_for

N_TRAIN_CUTOFFS = 6
N_VALIDATION_CUTOFFS = 2
MIN_TRAIN_POSITIVES = 20
MIN_VALIDATION_POSITIVES = 10
MAX_TRAIN_ROWS = 2_000_000


def training_metrics(tenant: Tenant, as_of: datetime) -> list[Metric]:
    """The default features minus what is not point-in-time (attributes hold today's value,
    risk_score is our own output)."""
    return [m for m in default_metrics(tenant, as_of) if m.kind not in (Kind.ATTRIBUTE, Kind.RISK_SCORE)]


def choose_cutoffs(
    *, as_of: datetime, horizon_days: int, earliest: datetime | None
) -> tuple[list[datetime], list[datetime]]:
    step = timedelta(days=max(1, min(7, horizon_days)))
    horizon = timedelta(days=horizon_days)
    validation = [as_of - horizon - i * step for i in range(N_VALIDATION_CUTOFFS)]
    training = [min(validation) - horizon - i * step for i in range(N_TRAIN_CUTOFFS)]
    if earliest is not None:
        validation = [c for c in validation if c > earliest]
        training = [c for c in training if c > earliest]
    return sorted(training), sorted(validation)


def range_features(
    *, tenant: Tenant, as_of: datetime, metrics: list[Metric], lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features of every customer with lo <= id <= hi: (ids, values).

    Filters by id range, not by an id list: an `= ANY(20,000 ids)` filter made the same
    query ~10x slower here.
    """
    return range_matrix(tenant=tenant, as_of=as_of, metrics=metrics, lo=lo, hi=hi)


@dataclass
class Snapshots:
    names: list[str]
    x: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    cutoff_index: np.ndarray
    cutoffs: list[datetime]

    def take(self, mask: np.ndarray) -> Snapshots:
        return Snapshots(
            self.names,
            self.x[mask],
            self.y[mask],
            self.customer_ids[mask],
            self.cutoff_index[mask],
            self.cutoffs,
        )


def build_snapshots(
    *,
    tenant: Tenant,
    cutoffs: list[datetime],
    metrics: list[Metric],
    horizon_days: int,
    first_ids: np.ndarray,
    first_seen: np.ndarray,
) -> Snapshots:
    """Features as of each cut-off for the customers who existed then, labelled after it."""
    xs, ids, idx = [], [], []
    names = [str(m) for m in metrics]
    chunk = CHUNK_SIZE
    for start in range(0, len(first_ids), chunk):
        part = first_ids[start : start + chunk]
        # All cut-offs in one pass over the chunk's rollups (8 separate passes cost ~3x more).
        got, matrices = range_matrices(
            tenant=tenant, as_ofs=cutoffs, metrics=metrics, lo=int(part[0]), hi=int(part[-1])
        )
        pos = np.minimum(np.searchsorted(first_ids, got), len(first_ids) - 1)
        seen = np.where(first_ids[pos] == got, first_seen[pos], np.nan)
        for i, (cutoff, values) in enumerate(zip(cutoffs, matrices, strict=True)):
            keep = seen <= cutoff.timestamp()  # NaN (never seen) is never kept
            xs.append(values[keep])
            ids.append(got[keep])
            idx.append(np.full(int(keep.sum()), i, dtype=np.int64))
    if not xs:
        empty = np.empty(0, dtype=np.int64)
        return Snapshots(names, np.empty((0, len(names))), np.empty(0), empty, empty, cutoffs)
    customer_ids, cutoff_index = np.concatenate(ids), np.concatenate(idx)
    y = labels_for(
        tenant=tenant,
        cutoffs=cutoffs,
        horizon_days=horizon_days,
        customer_ids=customer_ids,
        cutoff_index=cutoff_index,
    )
    return Snapshots(names, np.vstack(xs), y, customer_ids, cutoff_index, cutoffs)


def align(values: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    """Columns of `values` reordered to `want` (a model's feature order)."""
    if have == want:
        return values
    pos = {name: i for i, name in enumerate(have)}
    missing = [n for n in want if n not in pos]
    if missing:
        raise KeyError(f"features missing from the frame: {missing}")
    return values[:, [pos[n] for n in want]]


def holdout_half(customer_ids: np.ndarray) -> np.ndarray:
    """A stable 50/50 split of customers (True = evaluation half)."""
    return ((customer_ids.astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(16)) & np.uint64(1) == 1


@dataclass
class Outcome:
    ok: bool
    reason: str
    names: list[str]
    training_rows: int = 0
    fitted: ml.Fitted | None = None
    calibration: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    evaluation: Snapshots | None = None


def train(*, tenant: Tenant, as_of: datetime) -> Outcome:
    """Snapshots -> XGBoost with early stopping -> calibration -> metrics on untouched rows.

    Validation cut-offs are split by customer: one half drives early stopping and the
    calibrator, the other half only measures (metrics and the promotion comparison).
    """
    horizon = tenant.horizon_days
    metrics = training_metrics(tenant, as_of)
    names = [str(m) for m in metrics]
    first_ids, first_seen = customer_first_seen(tenant=tenant)
    known = first_seen[~np.isnan(first_seen)]
    earliest = datetime.fromtimestamp(known.min(), tz=as_of.tzinfo) if len(known) else None
    train_cuts, val_cuts = choose_cutoffs(as_of=as_of, horizon_days=horizon, earliest=earliest)
    if not train_cuts or not val_cuts:
        return Outcome(
            False,
            f"not enough history: need data from before {as_of - timedelta(days=3 * horizon):%Y-%m-%d} "
            f"so that training and validation label windows of {horizon} days have elapsed",
            names,
        )
    cutoffs = train_cuts + val_cuts
    snaps = build_snapshots(
        tenant=tenant,
        cutoffs=cutoffs,
        metrics=metrics,
        horizon_days=horizon,
        first_ids=first_ids,
        first_seen=first_seen,
    )
    is_val = snaps.cutoff_index >= len(train_cuts)
    tr = snaps.take(~is_val)
    if len(tr.y) > MAX_TRAIN_ROWS:
        keep = np.random.default_rng(7).choice(len(tr.y), MAX_TRAIN_ROWS, replace=False)
        tr = tr.take(np.sort(keep))
    evaluation_half = holdout_half(snaps.customer_ids)
    stop = snaps.take(is_val & ~evaluation_half)
    ev = snaps.take(is_val & evaluation_half)
    counts = {
        "train_rows": len(tr.y),
        "train_positives": int(tr.y.sum()),
        "validation_rows": len(stop.y) + len(ev.y),
        "validation_positives": int(stop.y.sum() + ev.y.sum()),
        "cutoffs": [c.isoformat() for c in cutoffs],
        "validation_cutoffs": len(val_cuts),
    }
    problems = []
    if tr.y.sum() < MIN_TRAIN_POSITIVES:
        problems.append(f"{int(tr.y.sum())} positives in training (need {MIN_TRAIN_POSITIVES})")
    if min(stop.y.sum(), ev.y.sum()) < MIN_VALIDATION_POSITIVES // 2 or len(ev.y) - ev.y.sum() < 5:
        problems.append(
            f"{int(stop.y.sum() + ev.y.sum())} positives in validation (need {MIN_VALIDATION_POSITIVES})"
        )
    if tr.y.sum() == len(tr.y):
        problems.append("every training row is positive")
    if problems:
        return Outcome(False, "too little data: " + "; ".join(problems), names, metrics=counts)
    fitted = ml.fit(tr.x, tr.y, stop.x, stop.y, names)
    calibration = ml.calibration_fit(ml.margins(fitted.booster, stop.x), stop.y)
    p = ml.calibration_apply(calibration, ml.margins(fitted.booster, ev.x))
    scores: dict[str, Any] = ml.evaluate(ev.y, p)
    scores.update(counts)
    scores["best_iteration"] = fitted.best_iteration
    scores["calibration_table"] = ml.calibration_table(ev.y, p)
    return Outcome(
        True,
        "trained",
        names,
        training_rows=len(tr.y),
        fitted=fitted,
        calibration=calibration,
        metrics=scores,
        evaluation=ev,
    )


def predict_snapshots(
    *, tenant: Tenant, booster, calibration: dict, names: list[str], evaluation: Snapshots
) -> np.ndarray:
    """Another model's calibrated predictions on the same evaluation rows (its own features)."""
    if names == evaluation.names:
        x = evaluation.x
    else:
        metrics = [parse_metric(n) for n in names]
        parts = []
        for i, cutoff in enumerate(evaluation.cutoffs):
            rows = np.flatnonzero(evaluation.cutoff_index == i)
            if not len(rows):
                continue
            frame = compute_features(
                tenant=tenant, as_of=cutoff, metrics=metrics, customer_ids=evaluation.customer_ids[rows]
            )
            pos = np.searchsorted(frame.customer_ids, evaluation.customer_ids[rows])
            parts.append((rows, align(frame.values, frame.names, names)[pos]))
        x = np.empty((len(evaluation.y), len(names)))
        for rows, values in parts:
            x[rows] = values
    return ml.calibration_apply(calibration, ml.margins(booster, x))
