"""Playbook backtest (`campaigns.playbooks.playbook_backtest`) on demo data, per trigger.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/p1bench .venv/bin/python bench/backtest_bench.py \
        --customers 2000 --days 120

Times a 14-day backtest for triggers over every metric kind, including the long window that
took 809 s before (`count(onboarding.step_completed, 365)`), beside computing one day's features.
"""

from __future__ import annotations

import argparse
import json
import time

from _setup import django_setup

TRIGGERS = {
    "count(onboarding.step_completed, 365) < 3": {
        "metric": "count(onboarding.step_completed, 365)", "op": "lt", "value": 3,
    },
    "count(error.*, 7) >= 3": {"metric": "count(error.*, 7)", "op": "gte", "value": 3},
    "days_since_last(session.*) > 14": {"metric": "days_since_last(session.*)", "op": "gt", "value": 14},
    "signed up 3-21 days ago AND < 3 onboarding steps": {
        "all": [
            {"metric": "days_since_signup", "op": "gte", "value": 3},
            {"metric": "days_since_signup", "op": "lte", "value": 21},
            {"metric": "count(onboarding.step_completed, 30)", "op": "lt", "value": 3},
        ]
    },
    "trend(session.*) < 0.5 AND plan = pro": {
        "all": [
            {"metric": "trend(session.*)", "op": "lt", "value": 0.5},
            {"metric": "attribute.plan", "op": "eq", "value": "pro"},
        ]
    },
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--backtest-days", type=int, default=14)
    args = parser.parse_args()
    django_setup()
    from django.utils import timezone

    from accounts.models import Tenant
    from accounts.services import tenant_create
    from campaigns.playbooks import playbook_backtest
    from demo.data import generate_demo_data
    from proactive.features.compute import compute_features

    slug = f"bench-backtest-{args.customers}-{args.days}"
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant, _ = tenant_create(slug=slug, name=slug)
        generate_demo_data(tenant=tenant, customers=args.customers, days=args.days, seed=5)
    as_of = timezone.now()
    began = time.perf_counter()
    compute_features(tenant=tenant, as_of=as_of)
    out: dict = {"customers": args.customers, "default_features_s": round(time.perf_counter() - began, 3)}
    for label, trigger in TRIGGERS.items():
        began = time.perf_counter()
        result = playbook_backtest(tenant=tenant, trigger=trigger, days=args.backtest_days, as_of=as_of)
        out[label] = {
            "seconds": round(time.perf_counter() - began, 2),
            "matched": result["matched"],
            "precision": None if result["precision"] is None else round(result["precision"], 3),
            "base_rate": None if result["base_rate"] is None else round(result["base_rate"], 3),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
