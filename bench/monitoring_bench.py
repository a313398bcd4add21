"""Incident detector benchmark: false alarms and detection delay over seeds, and time per run.

    DEBUG=1 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/proactive_wt15 \
        .venv/bin/python bench/monitoring_bench.py quality --seeds 5
    DEBUG=1 DATABASE_URL=... .venv/bin/python bench/monitoring_bench.py timing --customers 100000

quality: per seed, a generated tenant (3,000 customers, 12 weeks of error signals with weekly
seasonality, growth, drifting and noisy regimes; tests/campaigns/monitoring_world.py) is checked
every 3 hours over its last 8 weeks (false alarm episodes), then a world with one planted outage
(one segment, 35% of its active customers per hour) is checked every 5 minutes from its start
(detection delay, precision and recall of the affected set at detection).

timing: one tenant of N customers with 5 weeks of error signals at the same per-customer rates;
over the last `--repeat` hours: `detect` at the first run of each hour (slides the cached
history one hour), `detect` and `monitor_run` (plus the run record and the incident writes)
later in the hour, the daily full reread (`history_refresh`, its own task), and a run with
nothing cached; against a baseline measured in the same run: one scan counting the tenant's
SignalHourly rows of the history window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._setup import django_setup  # noqa: E402

django_setup()

from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from campaigns.conditions import parse_condition  # noqa: E402
from campaigns.models import Incident  # noqa: E402
from campaigns.monitoring import HISTORY_DAYS, detect, history_refresh, monitor_run  # noqa: E402
from campaigns.playbooks import matching_sql  # noqa: E402
from tests.campaigns.monitoring_world import Outage, build_world  # noqa: E402

END = datetime(2026, 3, 2, tzinfo=UTC)


def _tenant(slug: str) -> Tenant:
    Tenant.objects.filter(slug=slug).delete()
    return Tenant.objects.create(slug=slug, name=slug)


def _affected(tenant: Tenant, incident: Incident, as_of: datetime) -> set[str]:
    sql, params = matching_sql(
        tenant=tenant, as_of=as_of, condition=parse_condition(incident.affected, "affected")
    )
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT c.external_id FROM ({sql}) m JOIN proactive_customer c ON c.id = m.customer_id",  # noqa: S608
            params,
        )
        return {r[0] for r in cur.fetchall()}


def quality(seeds: int) -> None:
    rows = []
    for seed in range(100, 100 + seeds):
        tenant = _tenant(f"bench-normal-{seed}")
        build_world(tenant=tenant, seed=seed, weeks=12, end=END)
        episodes, previous, as_of, runs = 0, False, END - timedelta(weeks=8), 0
        while as_of < END:
            spiking = bool(detect(tenant=tenant, as_of=as_of).spikes)
            episodes += spiking and not previous
            previous, as_of, runs = spiking, as_of + timedelta(hours=3), runs + 1
        tenant.delete()
        tenant = _tenant(f"bench-outage-{seed}")
        start = END - timedelta(days=3) + timedelta(hours=8 + seed % 8, minutes=7 * (seed % 8))
        segment = ("integration", "hubspot") if seed % 2 else ("region", "us")
        world = build_world(
            tenant=tenant,
            seed=seed,
            weeks=6,
            end=END,
            outage=Outage("error.api_timeout", *segment, start, hours=5, share=0.35),
        )
        as_of, detected = start, None
        while as_of <= start + timedelta(hours=3) and detected is None:
            if monitor_run(tenant=tenant, as_of=as_of)["suspected"]:
                detected = as_of
            as_of += timedelta(minutes=5)
        row = {"seed": seed, "false_alarms_8_weeks": episodes, "checks": runs}
        if detected is not None:
            incident = Incident.objects.for_tenant(tenant).get()
            affected = _affected(tenant, incident, detected)
            planted = world.planted_between(start, detected)
            hit = len(affected & planted)
            row.update(
                delay_minutes=(detected - start).total_seconds() / 60,
                segment_named=incident.detection["segment"] == {segment[0]: segment[1]},
                precision=round(hit / max(len(affected), 1), 3),
                recall=round(hit / max(len(planted), 1), 3),
            )
        else:
            row["delay_minutes"] = None
        tenant.delete()
        rows.append(row)
        print(json.dumps(row), flush=True)
    weeks = 8 * len(rows)
    delays = [r["delay_minutes"] for r in rows if r["delay_minutes"] is not None]
    print(
        json.dumps(
            {
                "seeds": len(rows),
                "false_alarms_per_8_weeks": sum(r["false_alarms_8_weeks"] for r in rows) / len(rows),
                "false_alarms_per_week": sum(r["false_alarms_8_weeks"] for r in rows) / weeks,
                "detected": f"{len(delays)}/{len(rows)}",
                "delay_minutes_median": statistics.median(delays) if delays else None,
                "delay_minutes_max": max(delays) if delays else None,
                "segment_named": sum(bool(r.get("segment_named")) for r in rows),
                "precision_min": min((r["precision"] for r in rows if "precision" in r), default=None),
                "recall_min": min((r["recall"] for r in rows if "recall" in r), default=None),
            }
        )
    )


def timing(customers: int, repeat: int) -> None:
    slug = f"bench-monitor-{customers}"
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = _tenant(slug)
        started = time.perf_counter()
        build_world(tenant=tenant, seed=1, customers=customers, weeks=5, end=END, scale=customers / 3000)
        with connection.cursor() as cur:
            cur.execute("ANALYZE proactive_signalhourly, proactive_customer")
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM proactive_signalhourly WHERE tenant_id = %s AND hour >= %s",
            [tenant.pk, END - timedelta(days=HISTORY_DAYS + 1)],
        )
        rollup_rows = cur.fetchone()[0]
    monitor_run(tenant=tenant, as_of=END - timedelta(hours=repeat + 1))  # warm: coverage, keys
    base, det, run, first = [], [], [], []
    for i in range(repeat, 0, -1):
        hour = END - timedelta(hours=i)
        # The first run of each hour slides the cached history by one hour; the rest reuse it.
        t = time.perf_counter()
        detect(tenant=tenant, as_of=hour + timedelta(minutes=2))
        first.append(time.perf_counter() - t)
        as_of = hour + timedelta(minutes=30)
        t = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute(
                "SELECT name, hour, count(*) FROM proactive_signalhourly WHERE tenant_id = %s "
                "AND hour >= %s AND hour < %s GROUP BY 1, 2",
                [tenant.pk, as_of - timedelta(days=HISTORY_DAYS), as_of],
            )
            cur.fetchall()
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        detect(tenant=tenant, as_of=as_of)
        det.append(time.perf_counter() - t)
        t = time.perf_counter()
        monitor_run(tenant=tenant, as_of=as_of + timedelta(minutes=5))
        run.append(time.perf_counter() - t)
    refresh = [history_refresh(tenant=tenant, as_of=END - timedelta(minutes=2)) for _ in range(3)]
    cache.clear()  # nothing cached (a new tenant, a lost cache): the run reads everything itself
    t = time.perf_counter()
    detect(tenant=tenant, as_of=END - timedelta(minutes=2))
    cold = time.perf_counter() - t
    print(
        json.dumps(
            {
                "customers": customers,
                "hourly_rollup_rows_in_window": rollup_rows,
                "baseline_scan_s": round(statistics.median(base), 3),
                "detect_first_of_hour_s": round(statistics.median(first), 3),
                "detect_first_of_hour_max_s": round(max(first), 3),
                "detect_s": round(statistics.median(det), 3),
                "monitor_run_s": round(statistics.median(run), 3),
                "daily_refresh_s": round(statistics.median(refresh), 3),
                "detect_nothing_cached_s": round(cold, 3),
                "first_of_hour_over_baseline": round(statistics.median(first) / statistics.median(base), 2),
                "detect_over_baseline": round(statistics.median(det) / statistics.median(base), 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["quality", "timing"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "quality":
        quality(args.seeds)
    else:
        timing(args.customers, args.repeat)


if __name__ == "__main__":
    main()
