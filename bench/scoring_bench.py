"""Scoring and training benchmark on the demo generator.

    DEBUG=1 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h2 \
        .venv/bin/python bench/scoring_bench.py --customers 100000 --days 90

1. generates N customers x D days with `demo.data` (once per size and seed);
2. trains as of `end - horizon` (selection on 6 purged training + 2 validation cut-offs, then a
   refit on all 9 closed cut-offs; baselines fitted in the same run), timed;
3. scores every customer as of `end - horizon` end to end (features, predict, reasons, write), timed;
4. measures AUC on the window (end - horizon, end], which no training label saw, for the model
   and for a baseline that ranks by contacts in the last 30 days.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from demo.data import generate_demo_data  # noqa: E402
from proactive.features.compute import compute_features  # noqa: E402
from proactive.features.metrics import parse_metric  # noqa: E402
from proactive.models import RiskScore  # noqa: E402
from proactive.scoring.labels import labels_for  # noqa: E402
from proactive.scoring.registry import model_train  # noqa: E402
from proactive.scoring.scoring import score_all  # noqa: E402

END = datetime(2025, 6, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    slug = f"bench-scoring-{args.customers}-{args.days}-{args.seed}"
    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
    out: dict = {"customers": args.customers, "days": args.days, "seed": args.seed}
    if created:
        t = time.perf_counter()
        summary = generate_demo_data(
            tenant=tenant, customers=args.customers, days=args.days, seed=args.seed, end=END
        )
        out["generate_seconds"] = round(time.perf_counter() - t, 1)
        out["signals"] = summary.signals_stored
    horizon = tenant.horizon_days
    as_of = END - timedelta(days=horizon)

    t = time.perf_counter()
    model = model_train(tenant=tenant, as_of=as_of)
    out["train_seconds"] = round(time.perf_counter() - t, 1)
    out["model"] = {
        "version": model.version,
        "status": model.status,
        "training_rows": model.training_rows,
        "cutoffs": len(model.metrics.get("cutoffs", [])),
        "best_iteration": model.metrics.get("best_iteration"),
        "validation": {k: model.metrics.get(k) for k in ("auc", "pr_auc", "brier", "base_rate")},
        "top_features": list(model.feature_importance)[:5],
    }

    t = time.perf_counter()
    scored = score_all(tenant=tenant, as_of=as_of)
    out["score_seconds"] = round(time.perf_counter() - t, 1)
    out["score"] = scored

    rows = RiskScore.objects.for_tenant(tenant).order_by("customer_id").values_list("customer_id", "score")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    p = np.array([r[1] for r in rows])
    y = labels_for(
        tenant=tenant,
        cutoffs=[as_of],
        horizon_days=horizon,
        customer_ids=ids,
        cutoff_index=np.zeros(len(ids), dtype=np.int64),
    )
    contacts = [parse_metric(f"count({pattern}, 30)") for pattern in tenant.contact_signals]
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=contacts, customer_ids=ids)
    baseline = frame.values.sum(axis=1)
    out["future_window"] = {
        "from": as_of.isoformat(),
        "to": END.isoformat(),
        "base_rate": round(float(y.mean()), 4),
        "model_auc": round(float(roc_auc_score(y, p)), 4),
        "baseline_recent_contacts_auc": round(float(roc_auc_score(y, baseline)), 4),
        "mean_score": round(float(p.mean()), 4),
    }
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
