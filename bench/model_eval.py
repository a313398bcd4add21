"""Model quality on a time split: the project's model against the baselines, on data it never saw.

    DEBUG=1 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/modeleval \\
        .venv/bin/python bench/model_eval.py [--demo-customers 5000 --demo-days 180 --seeds 1 2 3]

For each dataset the model is trained as of A = end - horizon (every label it learns from ends by
A), then every customer is scored as of A and compared with what happened in (A, end]:
AUC, PR-AUC, Brier, expected calibration error (10 equal-count bins) and the number of distinct
scores. The baselines of the same training run (BG/NBD and a plain XGBoost on windowed counts,
both refitted on the same cut-offs as the project's model) are measured on the same rows.

Datasets:
- `demo`: `demo.data` (target `contact`, 14 days), one tenant per seed;
- `lifetimes-example`: `example_transactions.csv` shipped in the `lifetimes` wheel (5,000 customers'
  dated purchases; target `inactivity` of `purchase`, 28 days). Not the CDNOW log that also ships
  there: that one is kept as an unseen check.

The "project" columns only use `model_train` and `Scorer`, which also exist on the code before
this change, so running this script with that code on PYTHONPATH (`--project-only`) measures
"before" on the same data.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if os.environ.get("BENCH_CODE"):
    sys.path.insert(0, os.environ["BENCH_CODE"])
else:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from proactive.ingest import customers_upsert, signals_copy_insert  # noqa: E402
from proactive.scoring.labels import customer_first_seen, labels_for  # noqa: E402
from proactive.scoring.registry import model_train  # noqa: E402
from proactive.scoring.scoring import Scorer  # noqa: E402

try:  # where the code being measured keeps them (they moved during a restructure)
    from proactive.chunks import customer_id_ranges as customer_id_chunks
except ImportError:
    from proactive.scoring.scoring import customer_id_chunks
try:
    from demo.data import generate_demo_data
except ImportError:
    from proactive.demo_data import generate_demo_data

DEMO_END = datetime(2025, 6, 1, tzinfo=UTC)


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(p, kind="stable")
    return float(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in np.array_split(order, bins)) / len(y))


def ece_spread(y: np.ndarray, p: np.ndarray, resamples: int = 200) -> tuple[float, float]:
    """(bootstrap standard error of the ECE, the ECE expected of perfectly calibrated scores on
    rows like these): at a few thousand rows ten bins' observed rates are noisy, so a
    calibrated model's ECE is not 0 and two models' ECEs differ by chance."""
    rng = np.random.default_rng(11)
    boot = [ece(y[i], p[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(resamples))]
    ideal = [ece((rng.random(len(p)) < p).astype(float), p) for _ in range(resamples)]
    return float(np.std(boot)), float(np.mean(ideal))


def measure(y: np.ndarray, p: np.ndarray) -> dict:
    se, ideal = ece_spread(y, p)
    return {
        "auc": round(float(roc_auc_score(y, p)), 4),
        "pr_auc": round(float(average_precision_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 5),
        "ece": round(ece(y, p), 5),
        "ece_se": round(se, 5),
        "ece_if_calibrated": round(ideal, 5),
        "distinct": int(len(np.unique(np.round(p, 6)))),
    }


def load_lifetimes_example(tenant: Tenant) -> datetime:
    """The lifetimes wheel's example transactions as `purchase` signals (read from the installed
    package's data folder; importing lifetimes itself is not needed)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install lifetimes (a dev dependency) for the lifetimes-example dataset")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "example_transactions.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(0)  # a time of day per purchase (the file has dates only)
    when = [
        datetime.fromisoformat(r["date"]).replace(tzinfo=UTC)
        + timedelta(seconds=int(rng.integers(36000, 72000)))
        for r in rows
    ]
    first: dict[str, datetime] = {}
    for r, ts in zip(rows, when, strict=True):
        first[r["id"]] = min(first.get(r["id"], ts), ts)
    records = [{"external_id": k, "signed_up_at": v.isoformat()} for k, v in first.items()]
    for lo in range(0, len(records), 5000):
        customers_upsert(tenant=tenant, records=records[lo : lo + 5000])
    signals_copy_insert(
        tenant_id=tenant.pk,
        rows=[
            (f"p{i}", r["id"], "purchase", ts, Jsonb({}))
            for i, (r, ts) in enumerate(zip(rows, when, strict=True))
        ],
        received_at=max(when),
    )
    from proactive.rollups import rollups_fold  # not in every older checkout (--project-only)

    rollups_fold(tenant_id=tenant.pk)  # what the worker would do next (the next run reads the rollups)
    tenant.prediction_target = Tenant.Target.INACTIVITY
    tenant.activity_signals = ["purchase"]
    tenant.horizon_days = 28
    tenant.save()
    return max(when).replace(hour=0, minute=0, second=0) + timedelta(days=1)


def evaluate(tenant: Tenant, end: datetime, project_only: bool) -> dict:
    horizon = tenant.horizon_days
    as_of = end - timedelta(days=horizon)
    captured: dict = {}
    if not project_only:
        from proactive.scoring import training

        real_train = training.train

        def keep_outcome(**kwargs):  # the same run's baselines, without training twice
            captured["outcome"] = real_train(**kwargs, refit_baselines=True)
            return captured["outcome"]

        training.train = keep_outcome
    t = time.perf_counter()
    try:
        model = model_train(tenant=tenant, as_of=as_of)
    finally:
        if not project_only:
            training.train = real_train
    out: dict = {
        "train_seconds": round(time.perf_counter() - t, 1),
        "status": model.status,
        "notes": model.notes,
    }
    scorer = Scorer.for_tenant(tenant, model if model.booster else None)
    ids_parts, p_parts = [], []
    for lo, hi in customer_id_chunks(tenant):
        ids, scores, _ = scorer.score(lo, hi, as_of)
        ids_parts.append(ids)
        p_parts.append(scores)
    ids, p = np.concatenate(ids_parts), np.concatenate(p_parts)
    y = labels_for(
        tenant=tenant,
        cutoffs=[as_of],
        horizon_days=horizon,
        customer_ids=ids,
        cutoff_index=np.zeros(len(ids), dtype=np.int64),
    )
    # Only customers who existed at A (the project's snapshots use the same rule).
    first_ids, first_seen = customer_first_seen(tenant=tenant)
    seen = first_seen[np.searchsorted(first_ids, ids)]
    keep = seen <= as_of.timestamp()
    out["rows"] = int(keep.sum())
    out["base_rate"] = round(float(y[keep].mean()), 4)
    out["project"] = measure(y[keep], p[keep])
    if project_only:
        return out
    outcome = captured["outcome"]
    snaps = training.build_snapshots(
        tenant=tenant,
        cutoffs=[as_of],
        names=outcome.names,
        horizon_days=horizon,
        first_ids=first_ids,
        first_seen=first_seen,
    )
    for baseline in outcome.baselines:
        out[baseline.name] = measure(snaps.y, baseline.predict(snaps.names, snaps.x, snaps.age))
    out["validation"] = {
        "project_auc": model.metrics.get("auc"),
        **{f"{k}_auc": v.get("auc") for k, v in (model.metrics.get("baselines") or {}).items()},
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo-customers", type=int, default=5000)
    parser.add_argument("--demo-days", type=int, default=180)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--datasets", nargs="+", default=["demo", "lifetimes-example"])
    parser.add_argument("--project-only", action="store_true", help="only what older code can run too")
    parser.add_argument("--prepare", action="store_true", help="only create and load the datasets")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    results = []
    for dataset in args.datasets:
        for seed in args.seeds if dataset == "demo" else [0]:
            slug = f"eval-{dataset}-{args.demo_customers}-{args.demo_days}-{seed}{args.tag}"
            tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
            if dataset == "demo":
                end = DEMO_END
                if created:
                    generate_demo_data(
                        tenant=tenant, customers=args.demo_customers, days=args.demo_days, seed=seed, end=end
                    )
            else:
                if created:
                    end = load_lifetimes_example(tenant)
                else:
                    from proactive.models import SignalDaily

                    last = SignalDaily.objects.for_tenant(tenant).order_by("-day").first()
                    end = datetime.combine(last.day, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
            if args.prepare:
                continue
            result = {"dataset": dataset, "seed": seed, **evaluate(tenant, end, args.project_only)}
            print(json.dumps(result), flush=True)
            results.append(result)
    if not args.project_only:
        print(
            "\n| dataset | seed | rows | base rate | model | AUC | PR-AUC | Brier "
            "| ECE (± se; if calibrated) | distinct scores |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            for name in ("project", "bgnbd", "xgb_counts"):
                if name in r:
                    m = r[name]
                    print(
                        f"| {r['dataset']} | {r['seed']} | {r['rows']} | {r['base_rate']} | {name} | "
                        f"{m['auc']} | {m['pr_auc']} | {m['brier']} | {m['ece']} (± {m['ece_se']}; "
                        f"{m['ece_if_calibrated']}) | {m['distinct']} |"
                    )


if __name__ == "__main__":
    main()
