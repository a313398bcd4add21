"""Customers upsert speed: `customers_upsert` (what `POST /api/v1/customers/batch` and Segment
identify call) over batches of customers with attributes, without HTTP.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/custbench .venv/bin/python bench/customers_bench.py \
        --customers 20000 --batch 5000 --rounds 3

Each round uses a fresh tenant and times three passes over the same customers:
- **create**: every customer is new (name, email, sign-up time, five attributes);
- **resend**: the identical payload again (nothing changes);
- **change**: the payload with one customer in ten on another plan and seat count.
Medians over the rounds are reported in customers per second. `BENCH_CODE=/path/to/checkout`
measures another checkout's code on the same database (the "before" of a change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, os.environ.get("BENCH_CODE") or str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from accounts.models import Tenant  # noqa: E402
from proactive.ingest import customers_upsert  # noqa: E402

PLANS = ["free", "pro", "enterprise", "legacy"]


def payload(n: int, changed: bool) -> list[dict]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        moved = changed and i % 10 == 0
        out.append(
            {
                "external_id": f"c{i:07d}",
                "name": f"Customer {i}",
                "email": f"c{i}@example.com",
                "signed_up_at": (start + timedelta(minutes=i)).isoformat(),
                "attributes": {
                    "plan": PLANS[(i + moved) % len(PLANS)],
                    "seats": i % 50 + (5 if moved else 0),
                    "api_version": "v1" if i % 3 else "v2",
                    "trial": i % 7 == 0,
                    "company": f"company-{i // 3}",
                },
            }
        )
    return out


def timed(tenant: Tenant, rows: list[dict], batch: int) -> float:
    t = time.perf_counter()
    for lo in range(0, len(rows), batch):
        customers_upsert(tenant=tenant, records=rows[lo : lo + batch])
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    first, changed = payload(args.customers, False), payload(args.customers, True)
    times: dict[str, list[float]] = {"create": [], "resend": [], "change": []}
    stamp = int(time.time())
    for r in range(args.rounds):
        tenant = Tenant.objects.create(slug=f"custbench-{stamp}-{r}", name="custbench")
        times["create"].append(timed(tenant, first, args.batch))
        times["resend"].append(timed(tenant, first, args.batch))
        times["change"].append(timed(tenant, changed, args.batch))
        print(r, {k: round(v[-1], 2) for k, v in times.items()}, flush=True)
    for phase, values in times.items():
        median = statistics.median(values)
        print(f"{phase}: median {median:.2f} s, {args.customers / median:,.0f} customers/s")


if __name__ == "__main__":
    main()
