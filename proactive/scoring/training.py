"""Training sets without leakage: snapshots of the model's features at past cut-offs.

Cut-offs step back from `as_of - horizon` so every label window has fully elapsed by
`as_of`. The latest cut-offs are the validation slice; the selection fit's cut-offs are
purged so that their label windows end before the first validation cut-off (no label of a
training row is observed after a validation feature was computed). Trees, calibration and
the comparison with the baselines are decided there; the promoted model is then refitted
with that many trees on every closed cut-off, the most recent included, so that it learns
from customers as old as the ones it scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from accounts.models import Tenant
from proactive.chunks import CHUNK_SIZE
from proactive.features.metrics import Metric
from proactive.features.values import values_ensure
from proactive.scoring import model as ml
from proactive.scoring.baselines import BGNBDBaseline, baselines_for, bgnbd_name, fill_bgnbd
from proactive.scoring.features import (
    grammar_metrics,
    model_feature_names,
    model_matrices,
    model_rows,
    target_stream,
)
from proactive.scoring.labels import customer_first_seen, labels_for

N_TRAIN_CUTOFFS = 6
N_VALIDATION_CUTOFFS = 2
MIN_TRAIN_POSITIVES = 20
MIN_VALIDATION_POSITIVES = 10
MAX_TRAIN_ROWS = 300_000  # a uniform sample beyond this: boosting time grows with rows
SPLIT_SEED = 7


def training_metrics(tenant: Tenant, as_of: datetime) -> list[Metric]:
    """The grammar part of the model's features (kept for callers that count them)."""
    return grammar_metrics(tenant, as_of)


def choose_cutoffs(
    *, as_of: datetime, horizon_days: int, earliest: datetime | None
) -> tuple[list[datetime], list[datetime], list[datetime]]:
    """(selection training, validation, every closed) cut-offs, each sorted. Every closed
    cut-off runs from `as_of - horizon` back to the oldest selection cut-off, one step apart."""
    step = timedelta(days=max(1, min(7, horizon_days)))
    horizon = timedelta(days=horizon_days)
    validation = [as_of - horizon - i * step for i in range(N_VALIDATION_CUTOFFS)]
    training = [min(validation) - horizon - i * step for i in range(N_TRAIN_CUTOFFS)]
    grid = set(validation + training)
    k = 0
    while as_of - horizon - k * step > min(training):
        grid.add(as_of - horizon - k * step)
        k += 1
    closed = sorted(grid)
    if earliest is not None:
        validation = [c for c in validation if c > earliest]
        training = [c for c in training if c > earliest]
        closed = [c for c in closed if c > earliest]
    return sorted(training), sorted(validation), sorted(closed)


def range_features(
    *, tenant: Tenant, as_of: datetime, names: list[str], lo: int, hi: int, fitted: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The model features `names` of every customer with lo <= id <= hi: (ids, values).

    Filters by id range, not by an id list: an `= ANY(20,000 ids)` filter made the same
    query ~10x slower here.
    """
    ids, (values,) = model_matrices(tenant=tenant, as_ofs=[as_of], names=names, lo=lo, hi=hi)
    fill_bgnbd(names, values, (fitted or {}).get("bgnbd"))
    return ids, values


@dataclass
class Snapshots:
    names: list[str]
    x: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    cutoff_index: np.ndarray
    cutoffs: list[datetime]
    age: np.ndarray  # days since the customer first existed, at the row's cut-off

    def at(self, cutoffs: list[datetime], names: list[str]) -> Snapshots | None:
        """The rows of `cutoffs` (re-indexed in that order) and the columns `names` that this
        snapshot holds, or None when it lacks one of the cut-offs. Columns it lacks are NaN."""
        stamps = [c.timestamp() for c in self.cutoffs]
        try:
            where = [stamps.index(c.timestamp()) for c in cutoffs]
        except ValueError:
            return None
        remap = np.full(len(self.cutoffs), -1, dtype=np.int64)
        remap[where] = np.arange(len(cutoffs))
        new_index = remap[self.cutoff_index]
        rows = np.flatnonzero(new_index >= 0)
        position = {n: i for i, n in enumerate(self.names)}
        x = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
        for j, name in enumerate(names):
            if name in position:
                x[:, j] = self.x[rows, position[name]]
        return Snapshots(
            names, x, self.y[rows], self.customer_ids[rows], new_index[rows], list(cutoffs), self.age[rows]
        )

    def columns(self, k: int) -> Snapshots:
        """The first `k` columns, as a view (writes go through to this snapshot)."""
        if k == len(self.names):
            return self
        return Snapshots(
            self.names[:k],
            self.x[:, :k],
            self.y,
            self.customer_ids,
            self.cutoff_index,
            self.cutoffs,
            self.age,
        )

    def take(self, mask: np.ndarray) -> Snapshots:
        return Snapshots(
            self.names,
            self.x[mask],
            self.y[mask],
            self.customer_ids[mask],
            self.cutoff_index[mask],
            self.cutoffs,
            self.age[mask],
        )

    @property
    def rows(self) -> tuple:
        """(names, x, y, age): what a baseline fits and predicts on."""
        return self.names, self.x, self.y, self.age


def build_snapshots(
    *,
    tenant: Tenant,
    cutoffs: list[datetime],
    names: list[str],
    horizon_days: int,
    first_ids: np.ndarray,
    first_seen: np.ndarray,
) -> Snapshots:
    """Features as of each cut-off for the customers who existed then, labelled after it."""
    xs, ids, idx, ages = [], [], [], []
    chunk = CHUNK_SIZE
    for start in range(0, len(first_ids), chunk):
        part = first_ids[start : start + chunk]
        # All cut-offs in one pass over the chunk's rollups (8 separate passes cost ~3x more).
        got, matrices = model_matrices(
            tenant=tenant, as_ofs=cutoffs, names=names, lo=int(part[0]), hi=int(part[-1])
        )
        pos = np.minimum(np.searchsorted(first_ids, got), len(first_ids) - 1)
        seen = np.where(first_ids[pos] == got, first_seen[pos], np.nan)
        for i, (cutoff, values) in enumerate(zip(cutoffs, matrices, strict=True)):
            keep = seen <= cutoff.timestamp()  # NaN (never seen) is never kept
            xs.append(values[keep].astype(np.float32))  # what XGBoost uses; half the memory
            ids.append(got[keep])
            idx.append(np.full(int(keep.sum()), i, dtype=np.int64))
            ages.append((cutoff.timestamp() - seen[keep]) / 86400)
    if not xs:
        empty = np.empty(0, dtype=np.int64)
        return Snapshots(
            names,
            np.empty((0, len(names)), dtype=np.float32),
            np.empty(0),
            empty,
            empty,
            cutoffs,
            np.empty(0),
        )
    customer_ids, cutoff_index = np.concatenate(ids), np.concatenate(idx)
    y = labels_for(
        tenant=tenant,
        cutoffs=cutoffs,
        horizon_days=horizon_days,
        customer_ids=customer_ids,
        cutoff_index=cutoff_index,
    )
    return Snapshots(names, np.vstack(xs), y, customer_ids, cutoff_index, cutoffs, np.concatenate(ages))


def align(values: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    """Columns of `values` reordered to `want` (a model's feature order)."""
    if have == want:
        return values
    pos = {name: i for i, name in enumerate(have)}
    missing = [n for n in want if n not in pos]
    if missing:
        raise KeyError(f"features missing from the frame: {missing}")
    return values[:, [pos[n] for n in want]]


def holdout_half(customer_ids: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """A seeded 50/50 split of customers (True = evaluation half). Drawn over the customers in id
    order, so it depends on the seed and the customers, not on the ids' absolute values (a
    hash of database ids moved with the sequence between test runs and made AUCs swing)."""
    unique, inverse = np.unique(customer_ids, return_inverse=True)
    return (np.random.default_rng(seed).random(len(unique)) < 0.5)[inverse]


@dataclass
class Reusable:
    """A training run's snapshots, for the insights step of the same pipeline run: the same
    cut-offs, customers and labels, so discovery need not compute them again."""

    target: str
    horizon_days: int
    as_of: datetime
    snapshots: Snapshots


@dataclass
class Outcome:
    ok: bool
    reason: str
    names: list[str]
    training_rows: int = 0
    fitted: ml.Fitted | None = None  # refitted on every closed cut-off: the model to store
    selected: ml.Fitted | None = None  # fitted on the purged split: what the metrics measure
    calibration: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    evaluation: Snapshots | None = None
    baselines: list = field(default_factory=list)  # refitted, for evaluations beyond `as_of`
    # Every closed cut-off's rows: the insights step of the same run reuses them.
    snapshots: Snapshots | None = None


def _subsample(snaps: Snapshots) -> Snapshots:
    if len(snaps.y) <= MAX_TRAIN_ROWS:
        return snaps
    keep = np.random.default_rng(SPLIT_SEED).choice(len(snaps.y), MAX_TRAIN_ROWS, replace=False)
    mask = np.zeros(len(snaps.y), dtype=bool)
    mask[keep] = True
    return snaps.take(mask)


def _summary(y: np.ndarray, p: np.ndarray) -> dict:
    out = ml.evaluate(y, p)
    out["calibration_error"] = ml.calibration_error(y, p)
    out["distinct_scores"] = int(len(np.unique(np.round(p, 6))))
    return out


def train(
    *, tenant: Tenant, as_of: datetime, refit_baselines: bool = False, extra_names: Sequence[str] = ()
) -> Outcome:
    """Snapshots -> selection fit with early stopping -> calibration -> metrics and baselines on
    untouched rows -> refit on every closed cut-off.

    Validation cut-offs are split by customer: one half drives early stopping and the
    calibrators, the other half only measures (metrics, baselines and the promotion comparison).
    """
    horizon = tenant.horizon_days
    values_ensure(tenant)  # after a changed declaration of numeric properties: rebuilt once
    names = model_feature_names(tenant, as_of)
    baselines = baselines_for(
        names=names,
        stream=target_stream(tenant),
        horizon=horizon,
        inactivity=tenant.prediction_target == Tenant.Target.INACTIVITY,
    )
    bgnbd = next((b for b in baselines if isinstance(b, BGNBDBaseline)), None)
    if bgnbd is not None:
        # BG/NBD's probability is also a feature of the project's model (stacked), so the model
        # starts from the recency-frequency view and adds what else the signals say.
        names = [*names, bgnbd_name(bgnbd.stream, horizon)]
    first_ids, first_seen = customer_first_seen(tenant=tenant)
    known = first_seen[~np.isnan(first_seen)]
    earliest = datetime.fromtimestamp(known.min(), tz=as_of.tzinfo) if len(known) else None
    train_cuts, val_cuts, closed = choose_cutoffs(as_of=as_of, horizon_days=horizon, earliest=earliest)
    if not train_cuts or not val_cuts:
        return Outcome(
            False,
            f"not enough history: need data from before {as_of - timedelta(days=3 * horizon):%Y-%m-%d} "
            f"so that training and validation label windows of {horizon} days have elapsed",
            names,
        )
    extra = [n for n in dict.fromkeys(extra_names) if n not in names]
    # `extra_names` ride along in the same pass (the insights step reads them), not in the model.
    computed = build_snapshots(
        tenant=tenant,
        cutoffs=closed,
        names=names + extra,
        horizon_days=horizon,
        first_ids=first_ids,
        first_seen=first_seen,
    )
    snaps = computed.columns(len(names))
    row_cut = np.array([c.timestamp() for c in closed])[snaps.cutoff_index]
    is_val = row_cut >= min(val_cuts).timestamp()
    is_train = np.isin(row_cut, [c.timestamp() for c in train_cuts])
    evaluation_half = holdout_half(snaps.customer_ids)
    tr = _subsample(snaps.take(is_train))
    stop = snaps.take(is_val & ~evaluation_half)
    ev = snaps.take(is_val & evaluation_half)
    counts = {
        "train_rows": len(tr.y),
        "train_positives": int(tr.y.sum()),
        "validation_rows": len(stop.y) + len(ev.y),
        "validation_positives": int(stop.y.sum() + ev.y.sum()),
        "cutoffs": [c.isoformat() for c in train_cuts + val_cuts],
        "validation_cutoffs": len(val_cuts),
        "refit_cutoffs": [c.isoformat() for c in closed],
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
    for baseline in baselines:
        baseline.select(tr.rows, stop.rows)
    if bgnbd is not None and bgnbd.model is not None:
        fill_bgnbd(names, snaps.x, bgnbd.model.as_dict())
        tr, stop = _subsample(snaps.take(is_train)), snaps.take(is_val & ~evaluation_half)
        ev = snaps.take(is_val & evaluation_half)
    selected = ml.fit(tr.x, tr.y, stop.x, stop.y, names)
    calibration = ml.calibration_fit(ml.margins(selected.booster, stop.x), stop.y)
    if bgnbd is not None and bgnbd.model is not None:
        feature = names[-1]
        stacked = ml.stack_fit(ml.margins(selected.booster, stop.x), stop.x[:, -1], stop.y, feature)
        calibration = stacked or calibration
    p = ml.predict(selected.booster, calibration, names, ev.x)
    scores = _summary(ev.y, p)
    scores.update(counts)
    scores["best_iteration"] = selected.best_iteration
    scores["calibration_table"] = ml.calibration_table(ev.y, p)

    scores["baselines"] = {}
    for baseline in baselines:
        p_base = baseline.predict(ev.names, ev.x, ev.age)
        scores["baselines"][baseline.name] = {
            **_summary(ev.y, p_base),
            "project_worse_by": ml.paired_difference(ev.y, p, p_base),
        }

    everything = _subsample(snaps)
    # BG/NBD is always refitted (its probability is a feature of the refitted model); the other
    # baselines only when someone measures them beyond `as_of` (bench/model_eval.py).
    for baseline in baselines:
        if refit_baselines or baseline is bgnbd:
            baseline.refit(everything.rows)
    if bgnbd is not None and bgnbd.model is not None:
        calibration = {**calibration, "bgnbd": bgnbd.model.as_dict()}
        fill_bgnbd(names, everything.x, calibration["bgnbd"])
    fitted = ml.refit(everything.x, everything.y, selected.best_iteration + 1, names)
    calibration = ml.recentre(fitted.booster, calibration, names, everything.x, everything.y)
    scores["refit_rows"] = len(everything.y)
    return Outcome(
        True,
        "trained",
        names,
        training_rows=len(everything.y),
        fitted=fitted,
        selected=selected,
        calibration=calibration,
        metrics=scores,
        evaluation=ev,
        baselines=baselines,
        snapshots=computed,
    )


def predict_snapshots(
    *, tenant: Tenant, booster, calibration: dict, names: list[str], evaluation: Snapshots
) -> np.ndarray:
    """Another model's calibrated predictions on the same evaluation rows (its own features)."""
    if names == evaluation.names:
        x = evaluation.x.copy()
        fill_bgnbd(names, x, calibration.get("bgnbd"))
    else:
        x = np.empty((len(evaluation.y), len(names)))
        for i, cutoff in enumerate(evaluation.cutoffs):
            rows = np.flatnonzero(evaluation.cutoff_index == i)
            if len(rows):
                x[rows] = model_rows(
                    tenant=tenant,
                    as_of=cutoff,
                    names=names,
                    customer_ids=evaluation.customer_ids[rows],
                    fitted=calibration,
                )
    return ml.predict(booster, calibration, names, x)
