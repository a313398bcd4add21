"""Find the behaviour that precedes the tenant's prediction target, and prove it on later data.

The rows are the model's point-in-time snapshots (`proactive.scoring.training`): one per customer
and cut-off, features as of the cut-off, labelled by the target in the horizon after it.
Candidates are generated and screened on the earlier (training) cut-offs only; the survivors are
measured on the later (validation) cut-offs, whose features and labels the screening never saw.
Every candidate tried counts in the Benjamini-Hochberg correction, so that on data where
behaviour says nothing about the target the list comes out empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import connection

from accounts.models import Tenant
from proactive.features.compute import compute_features, default_metrics
from proactive.features.metrics import Kind, Metric, parse_metric
from proactive.insights import candidates as cands
from proactive.insights.candidates import Candidate, Leaf
from proactive.insights.stats import Clusters, Evidence, bh_qvalues, evidence, screen_z
from proactive.scoring.labels import customer_first_seen, target_patterns
from proactive.scoring.training import Reusable, Snapshots, build_snapshots, choose_cutoffs, training_metrics

SIGNAL_KINDS = (Kind.COUNT, Kind.DAYS_SINCE_LAST, Kind.TREND, Kind.DAYS_SINCE_SIGNUP)
EXTRA_NAMES = 30  # catalogue names beyond the model's features that get their own candidates
MIN_TRAIN_ROWS = 30
MIN_TRAIN_POSITIVES = 20
MIN_VALIDATION_POSITIVES = 10
MIN_VALIDATION_ROWS = 20
MIN_VALIDATION_REACHED = 3
SCREEN_Z = 2.5
SCREEN_LIFT = 1.2
PAIR_GAIN = 1.2  # a pair must beat the better of its two parts' rates by this factor
ANCHORS = 20
PARTNER_SHARE = 0.05
PARTNER_MAX_SHARE = 0.95
MAX_VALIDATED = 60
PER_THEME = 5
OVERLAP = 0.5  # Jaccard of matched rows above which two screened conditions are the same finding
CONTAINED = 0.6  # share of the smaller matched set inside the larger, for results sharing a theme
Q_MAX = 0.05
MAX_RESULTS = 20


@dataclass
class Found:
    condition: dict
    evidence: Evidence
    q_value: float
    train: dict
    backtest: list[dict]
    customers_now: int = 0


@dataclass
class Discovery:
    ok: bool
    reason: str
    target: str
    horizon_days: int
    base_rate: float | None = None
    results: list[Found] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _overlaps(pattern: str, targets: list[str]) -> bool:
    """Whether a metric's pattern can match one of the target's signal patterns."""
    p_prefix = pattern.endswith("*")
    p = pattern.rstrip("*")
    for t in targets:
        t_prefix = t.endswith("*")
        t_text = t.rstrip("*")
        if (p_prefix and t_text.startswith(p)) or (t_prefix and p.startswith(t_text)) or p == t_text:
            return True
    return False


def insight_metrics(tenant: Tenant, as_of: datetime) -> list[Metric]:
    """The model's point-in-time features, plus recent counts and recency of every other catalogue
    name; for the `contact` target without the contact signals themselves (that past contacts
    precede contacts is no behaviour a playbook can act on)."""
    metrics = [m for m in training_metrics(tenant, as_of) if m.kind in SIGNAL_KINDS]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT name FROM proactive_signalname WHERE tenant_id = %s AND first_seen <= %s "
            "ORDER BY total DESC, name LIMIT 200",
            [tenant.pk, as_of],
        )
        names = [r[0] for r in cur.fetchall()]
    covered = {m.pattern for m in metrics}
    extra = [n for n in names if n not in covered][:EXTRA_NAMES]
    for name in extra:
        metrics += [parse_metric(f"count({name}, 7)"), parse_metric(f"count({name}, 30)")]
        metrics.append(parse_metric(f"days_since_last({name})"))
    if tenant.prediction_target == Tenant.Target.CONTACT:
        targets = target_patterns(tenant)
        metrics = [m for m in metrics if m.pattern is None or not _overlaps(m.pattern, targets)]
    return list(dict.fromkeys(metrics))


def attribute_columns(
    tenant: Tenant, as_of: datetime
) -> tuple[np.ndarray, list[tuple[str, str]], np.ndarray]:
    """One-hot columns of the low-cardinality string attributes: (customer ids, (key, value), values).

    Attributes hold today's value (there is no history of them), unlike the signal features."""
    metrics = [m for m in default_metrics(tenant, as_of) if m.kind is Kind.ATTRIBUTE]
    if not metrics:
        return np.empty(0, dtype=np.int64), [], np.empty((0, 0))
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=metrics)
    keep = [i for i, n in enumerate(frame.names) if "=" in n]
    pairs = (frame.names[i].removeprefix("attribute.").partition("=") for i in keep)
    labels = [(key, value) for key, _, value in pairs]
    return frame.customer_ids, labels, frame.values[:, keep]


class _Popcount:
    """Row masks packed to bits, so that pairs are counted with AND + popcount."""

    @staticmethod
    def pack(mask: np.ndarray) -> np.ndarray:
        return np.packbits(mask)

    @staticmethod
    def count(packed: np.ndarray) -> int:
        return int(np.bitwise_count(packed).sum())


@dataclass
class _Screened:
    candidate: Candidate
    packed: np.ndarray
    rows: int
    reached: int
    rate: float
    lift: float
    z: float
    parents: tuple[Candidate, Candidate] | None = None


def _snapshots(
    *,
    tenant: Tenant,
    as_of: datetime,
    cutoffs: list[datetime],
    names: list[str],
    first_ids: np.ndarray,
    first_seen: np.ndarray,
    reuse: Reusable | None,
) -> tuple[Snapshots, str]:
    """The snapshots at `cutoffs` with columns `names`: taken from the same run's training where
    it holds them (same as-of, target and horizon), computing only the columns it lacks."""
    horizon = tenant.horizon_days

    def build(wanted: list[str]) -> Snapshots:
        return build_snapshots(
            tenant=tenant,
            cutoffs=cutoffs,
            names=wanted,
            horizon_days=horizon,
            first_ids=first_ids,
            first_seen=first_seen,
        )

    if reuse is None or (reuse.target, reuse.horizon_days, reuse.as_of) != (
        tenant.prediction_target,
        horizon,
        as_of,
    ):
        return build(names), "computed"
    got = reuse.snapshots.at(cutoffs, names)
    if got is None:
        return build(names), "computed"
    missing = [j for j, n in enumerate(names) if n not in set(reuse.snapshots.names)]
    if not missing:
        return got, "reused"
    extra = build([names[j] for j in missing])
    mine = np.lexsort((got.customer_ids, got.cutoff_index))
    theirs = np.lexsort((extra.customer_ids, extra.cutoff_index))
    if not (
        np.array_equal(got.customer_ids[mine], extra.customer_ids[theirs])
        and np.array_equal(got.cutoff_index[mine], extra.cutoff_index[theirs])
    ):
        return build(names), "computed"
    for k, j in enumerate(missing):
        got.x[mine, j] = extra.x[theirs, k]
    return got, f"reused, {len(missing)} of {len(names)} columns computed"


def discover(*, tenant: Tenant, as_of: datetime, reuse: Reusable | None = None) -> Discovery:
    """Insights as of `as_of` from snapshots at the model's cut-offs (see the module docstring).
    `reuse`: the same run's training snapshots, used for the columns they hold."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    target, horizon = tenant.prediction_target, tenant.horizon_days
    metrics = insight_metrics(tenant, as_of)
    first_ids, first_seen = customer_first_seen(tenant=tenant)
    known = first_seen[~np.isnan(first_seen)]
    earliest = datetime.fromtimestamp(known.min(), tz=as_of.tzinfo) if len(known) else None
    train_cuts, val_cuts, _closed = choose_cutoffs(as_of=as_of, horizon_days=horizon, earliest=earliest)
    if not metrics or not train_cuts or not val_cuts:
        return Discovery(
            False,
            f"not enough history: need behaviour from before {as_of - timedelta(days=3 * horizon):%Y-%m-%d} "
            f"so that earlier and later windows of {horizon} days have elapsed",
            target,
            horizon,
            stats={"seconds": seconds},
        )
    snaps, source = _snapshots(
        tenant=tenant,
        as_of=as_of,
        cutoffs=train_cuts + val_cuts,
        names=[str(m) for m in metrics],
        first_ids=first_ids,
        first_seen=first_seen,
        reuse=reuse,
    )
    attr_ids, attr_labels, attr_values = attribute_columns(tenant, as_of)
    if len(attr_labels):
        pos = np.minimum(np.searchsorted(attr_ids, snaps.customer_ids), len(attr_ids) - 1)
        attr_rows = attr_values[pos]
    else:
        attr_rows = np.empty((len(snaps.y), 0))
    lap("snapshots")

    width = snaps.x.shape[1]

    def column(leaf: Leaf) -> np.ndarray:
        return snaps.x[:, leaf.column] if leaf.column < width else attr_rows[:, leaf.column - width]

    is_train = snaps.cutoff_index < len(train_cuts)
    y = snaps.y > 0.5
    y_tr = y[is_train]
    n_tr, pos_tr = int(is_train.sum()), int(y_tr.sum())
    val_y = y[~is_train]
    stats: dict[str, Any] = {
        "cutoffs": [c.isoformat() for c in train_cuts],
        "validation_cutoffs": [c.isoformat() for c in val_cuts],
        "train_rows": n_tr,
        "train_reached": pos_tr,
        "validation_rows": int(len(val_y)),
        "validation_reached": int(val_y.sum()),
        "metrics": len(metrics),
        "snapshots": source,
        "seconds": seconds,
    }
    problems = []
    if pos_tr < MIN_TRAIN_POSITIVES or pos_tr == n_tr:
        problems.append(f"{pos_tr} of {n_tr} earlier rows reached the target (need {MIN_TRAIN_POSITIVES})")
    if val_y.sum() < MIN_VALIDATION_POSITIVES or val_y.all():
        reached = int(val_y.sum())
        problems.append(
            f"{reached} of {len(val_y)} later rows reached the target (need {MIN_VALIDATION_POSITIVES})"
        )
    if problems:
        return Discovery(False, "not enough data: " + "; ".join(problems), target, horizon, stats=stats)
    base_tr = pos_tr / n_tr
    y_tr_packed = _Popcount.pack(y_tr)

    # Singles, thresholds from the earlier cut-offs only.
    singles: list[Candidate] = []
    x_tr_cols = {}
    for j, metric in enumerate(metrics):
        x_tr_cols[j] = snaps.x[is_train, j]
        singles += cands.metric_candidates(metric, j, x_tr_cols[j])
    by_key: dict[str, list[tuple[int, str]]] = {}
    for i, (key, value) in enumerate(attr_labels):
        by_key.setdefault(key, []).append((width + i, value))
    for key, cols in by_key.items():
        singles += cands.attribute_candidates(key, cols)

    tried = 0
    screened: list[_Screened] = []
    partners: list[_Screened] = []
    for cand in singles:
        tried += 1
        m = cands.mask(cand, column)[is_train]
        rows = int(m.sum())
        if rows < max(MIN_TRAIN_ROWS, 1) or rows == n_tr:
            continue
        reached = int((m & y_tr).sum())
        rate = reached / rows
        z = screen_z(reached, rows, pos_tr, n_tr)
        item = _Screened(cand, _Popcount.pack(m), rows, reached, rate, rate / base_tr, z)
        # A partner narrows an anchor down, so it may match most customers on its own.
        if PARTNER_SHARE * n_tr <= rows <= PARTNER_MAX_SHARE * n_tr:
            partners.append(item)
        if cands.support_ok(rows, n_tr, MIN_TRAIN_ROWS) and item.lift >= SCREEN_LIFT and z >= SCREEN_Z:
            screened.append(item)
    stats["singles_tried"] = tried
    lap("singles")

    # Pairs: an anchor that already says something, with any other condition that sharpens it.
    anchors = _diverse(screened, per_theme=3, limit=ANCHORS)
    seen_pairs: set[frozenset[int]] = set()
    pairs: list[_Screened] = []
    for a in anchors:
        for b in partners:
            if a.candidate.metrics & b.candidate.metrics:
                continue
            pair = frozenset((id(a), id(b)))
            if pair in seen_pairs:
                continue
            seen_pairs.add(pair)
            tried += 1
            both = a.packed & b.packed
            rows = _Popcount.count(both)
            if not cands.support_ok(rows, n_tr, MIN_TRAIN_ROWS):
                continue
            reached = _Popcount.count(both & y_tr_packed)
            rate = reached / rows
            if rate < PAIR_GAIN * max(a.rate, b.rate):
                continue
            z = screen_z(reached, rows, pos_tr, n_tr)
            if rate / base_tr >= SCREEN_LIFT and z >= SCREEN_Z:
                pairs.append(
                    _Screened(
                        a.candidate & b.candidate,
                        both,
                        rows,
                        reached,
                        rate,
                        rate / base_tr,
                        z,
                        (a.candidate, b.candidate),
                    )
                )
    stats["pairs_tried"] = tried - stats["singles_tried"]
    stats["tried"] = tried
    lap("pairs")

    # Near-duplicates (the same customers under another name) are merged: the strongest stays.
    distinct: list[_Screened] = []
    for item in sorted(screened + pairs, key=lambda s: -s.z):
        if not any(_jaccard(item, k) >= OVERLAP for k in distinct):
            distinct.append(item)
    kept = _diverse(distinct, per_theme=PER_THEME, limit=MAX_VALIDATED)
    stats["validated"] = len(kept)

    # Measured on the later cut-offs.
    val_ids = snaps.customer_ids[~is_train]
    val_cut = snaps.cutoff_index[~is_train] - len(train_cuts)
    clusters = Clusters.of(val_ids, val_y.astype(np.float64))
    base_val = float(val_y.mean())
    measured: list[tuple[_Screened, Evidence, np.ndarray]] = []
    parent_lift: dict[Candidate, float] = {}

    def measure(cand: Candidate) -> tuple[Evidence, np.ndarray]:
        m = cands.mask(cand, column)[~is_train]
        return evidence(clusters, m, min_rows=MIN_VALIDATION_ROWS, min_reached=MIN_VALIDATION_REACHED), m

    for item in kept:
        ev, m = measure(item.candidate)
        measured.append((item, ev, m))
        for parent in item.parents or ():
            if parent not in parent_lift:
                parent_lift[parent] = measure(parent)[0].lift
    q = bh_qvalues(np.array([ev.p_value for _, ev, _ in measured]), tried)
    found: list[tuple[Found, np.ndarray, Candidate]] = []
    for (item, ev, m), q_value in zip(measured, q, strict=True):
        if q_value > Q_MAX or ev.lift <= 1:
            continue
        # A pair is listed only if, on the later cut-offs too, it says more than either part alone.
        if item.parents and ev.ci95[0] <= max(parent_lift[p] for p in item.parents):
            continue
        backtest = []
        for k, cutoff in enumerate(val_cuts):
            at = val_cut == k
            backtest.append(
                {
                    "as_of": cutoff.isoformat(),
                    "customers": int(at.sum()),
                    "reached": int((val_y & at).sum()),
                    "matched": int((m & at).sum()),
                    "matched_reached": int((m & at & val_y).sum()),
                }
            )
        train = {"rows": item.rows, "reached": item.reached, "rate": item.rate, "lift": item.lift}
        found.append(
            (Found(item.candidate.condition, ev, float(q_value), train, backtest), m, item.candidate)
        )
    stats["significant"] = len(found)
    found.sort(key=lambda f: (-f[0].evidence.ci95[0], -f[0].evidence.lift))
    results: list[tuple[Found, np.ndarray, Candidate]] = []
    for f, m, cand in found:
        if any(_same_story(m, cand, other, other_cand) for _, other, other_cand in results):
            continue
        results.append((f, m, cand))
    lap("validation")
    return Discovery(
        True, "computed", target, horizon, base_val, [f for f, _, _ in results[:MAX_RESULTS]], stats
    )


def _jaccard(a: _Screened, b: _Screened) -> float:
    inter = _Popcount.count(a.packed & b.packed)
    return inter / (a.rows + b.rows - inter) if a.rows + b.rows - inter else 1.0


def _same_story(a: np.ndarray, a_cand: Candidate, b: np.ndarray, b_cand: Candidate) -> bool:
    """Mostly the same customers, or a refinement (most of the smaller set inside the larger) of a
    condition about the same themes: only the stronger of the two is listed."""
    inter = int((a & b).sum())
    na, nb = int(a.sum()), int(b.sum())
    if na + nb - inter and inter / (na + nb - inter) >= OVERLAP:
        return True
    smaller = min(na, nb)
    return bool(a_cand.themes & b_cand.themes) and bool(smaller) and inter / smaller >= CONTAINED


def _diverse(items: list[_Screened], *, per_theme: int, limit: int) -> list[_Screened]:
    """The strongest items by screening z, at most `per_theme` about the same themes: one loud
    pattern (many variants of an error burst) must not crowd the others out."""
    out: list[_Screened] = []
    per: dict[frozenset, int] = {}
    for item in sorted(items, key=lambda s: -s.z):
        themes = item.candidate.themes
        if per.get(themes, 0) >= per_theme:
            continue
        per[themes] = per.get(themes, 0) + 1
        out.append(item)
        if len(out) >= limit:
            break
    return out
