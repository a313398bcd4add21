"""Insights cost beside training, on the demo generator.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/DB \
        .venv/bin/python bench/insights_bench.py --customers 100000 --days 120

Generates N customers x D days once per size and seed, then times, as of the world's end:
training alone (the baseline, same run); training with the insights' features riding along in
its snapshot pass, then the insights step on those snapshots (as the pipeline runs them); and the
insights step computing its own snapshots (as before they were shared). What insights add to
training = (training with their features - training alone) + the step. Goal: at most 60 s at
100k customers.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from _setup import django_setup

django_setup()

from accounts.models import Tenant  # noqa: E402
from demo.data import generate_demo_data  # noqa: E402
from proactive.insights.discovery import insight_metrics  # noqa: E402
from proactive.insights.service import insights_refresh  # noqa: E402
from proactive.scoring.registry import model_train, model_train_reusable  # noqa: E402

END = datetime(2025, 6, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    slug = f"bench-insights-{args.customers}-{args.days}-{args.seed}"
    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
    out: dict = {"customers": args.customers, "days": args.days}
    if created:
        t = time.perf_counter()
        summary = generate_demo_data(
            tenant=tenant, customers=args.customers, days=args.days, seed=args.seed, end=END
        )
        out.update(generate_seconds=round(time.perf_counter() - t, 1), signals=summary.signals_stored)
    t = time.perf_counter()
    model_train(tenant=tenant, as_of=END)
    out["train_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    names = [str(m) for m in insight_metrics(tenant, END)]
    _model, reusable = model_train_reusable(tenant=tenant, as_of=END, extra_names=names)
    out["train_with_insight_features_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    counts = insights_refresh(tenant=tenant, as_of=END, reuse=reusable)
    out["insights_step_seconds"] = round(time.perf_counter() - t, 1)
    del reusable, _model
    out["insights_add_seconds"] = round(
        out["train_with_insight_features_seconds"] - out["train_seconds"] + out["insights_step_seconds"], 1
    )
    out["insights"] = counts
    t = time.perf_counter()
    alone = insights_refresh(tenant=tenant, as_of=END)
    out["insights_step_computing_own_snapshots_seconds"] = round(time.perf_counter() - t, 1)
    out["insights_alone_seconds"] = alone["seconds"]
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
