"""Playbook evaluation benchmark: 20 playbooks over N customers, beyond computing features.

    psql -h 127.0.0.1 -U postgres -c 'create database h3'   # once
    DEBUG=1 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h3 \
        .venv/bin/python bench/playbooks_bench.py --customers 100000 --repeat 3

Generates customers and ~12 signals each over 40 days with set-based SQL (once per size),
creates 20 playbooks of every metric kind, then times `playbooks_evaluate` as of one moment:
its own split into "features" (materialising the features of #3 for all metrics the
playbooks read, the baseline measured in the same run) and "firing" (conditions, cooldown,
budget arbitration, holdout and the outreach INSERT). Each repetition deletes the outreach
first so every run fires for real; a last run without deleting shows the idempotent re-run.

`--webhooks` times every repetition twice, interleaved: without a webhook subscription, and with
one to `outreach.created` and `outreach.sent`, so that a delivery row is owed for every outreach
written (and the delivery tasks are published after each chunk commits).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from campaigns.firing import playbooks_evaluate  # noqa: E402
from campaigns.models import Outreach, Playbook  # noqa: E402
from campaigns.playbooks import playbook_create  # noqa: E402
from proactive.ingest import rollups_rebuild  # noqa: E402
from webhooks.models import WebhookDelivery, WebhookEndpoint  # noqa: E402
from webhooks.signing import new_secret  # noqa: E402

AS_OF = datetime(2026, 3, 2, 12, tzinfo=UTC)
ACTION = {
    "channel": "in_app",
    "title": "Hi {{ customer.first_name }}",
    "body": "We can help.",
    "priority": "normal",
}


def _leaf(metric: str, op: str, value: object = None) -> dict:
    return {"metric": metric, "op": op, "value": value}


def _all(*leaves: dict) -> dict:
    return {"all": list(leaves)}


# Twenty playbooks over every metric kind, each selective like a real one (~0.3-5% of customers).
TRIGGERS = [
    _all(_leaf("count(error.*, 3)", "gte", 2), _leaf("risk_score", "gte", 0.9)),
    _all(_leaf("count(error.sync_failed, 7)", "gte", 2), _leaf("attribute.plan", "eq", "pro")),
    _leaf("days_since_last(session.*)", "gte", 12),
    _all(_leaf("trend(session.*)", "lt", 0.4), _leaf("risk_score", "gte", 0.8)),
    _leaf("risk_score", "gte", 0.98),
    _all(_leaf("attribute.plan", "eq", "pro"), _leaf("attribute.seats", "gte", 46)),
    _all(_leaf("attribute.plan", "in", ["free", "team"]), _leaf("risk_score", "gte", 0.97)),
    _leaf("attribute.seats", "gte", 49),
    _all(
        _leaf("days_since_signup", "gte", 3),
        _leaf("days_since_signup", "lte", 21),
        _leaf("count(onboarding.step_completed, 365)", "lt", 3),
    ),
    {"any": [_leaf("count(error.*, 1)", "gte", 2), _leaf("risk_score", "gt", 0.995)]},
    {"not": _leaf("count(session.*, 14)", "gte", 1)},
    _leaf("count(billing.*, 30)", "gte", 3),
    _all(_leaf("attribute.api_version", "eq", "v1"), _leaf("count(api.*, 7)", "gte", 3)),
    _leaf("days_since_last(support.contact)", "lte", 0.5),
    _leaf("count(session.started, 7)", "gte", 5),
    _all(_leaf("trend(error.*)", "gt", 2.5), _leaf("risk_score", "gte", 0.5)),
    _all(_leaf("attribute.plan", "exists"), _leaf("count(error.*, 14)", "gte", 5)),
    _leaf("days_since_signup", "lt", 3),
    _all(_leaf("count(*, 7)", "gte", 5), _leaf("risk_score", "gte", 0.9)),
    _all(_leaf("attribute.region", "not_in", ["eu", "us"]), _leaf("risk_score", "gte", 0.95)),
]
NAMES = [
    *["session.started"] * 3,
    "error.sync_failed",
    "error.timeout",
    "onboarding.step_completed",
    "billing.invoice_viewed",
    *["api.call"] * 2,
    "support.contact",
]


def seed(tenant: Tenant, customers: int) -> None:
    """Customers with attributes and ~12 signals each over 40 days, in SQL."""
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO proactive_customer (tenant_id, external_id, name, email, signed_up_at, attributes, "
            "created_at, updated_at) "
            "SELECT %s, 'b' || g, 'Customer ' || g, '', %s::timestamptz - (g %% 400) * interval '1 day', "
            "jsonb_build_object('plan', (ARRAY['free','team','pro'])[1 + g %% 3], 'seats', g %% 50, "
            "  'api_version', CASE WHEN g %% 5 = 0 THEN 'v1' ELSE 'v2' END, "
            "  'region', (ARRAY['eu','us','apac'])[1 + g %% 3]), now(), now() "
            "FROM generate_series(1, %s) g",
            [tenant.pk, AS_OF, customers],
        )
        cur.execute(
            "INSERT INTO proactive_signal "
            "(tenant_id, customer_id, key, name, timestamp, properties, received_at) "
            "SELECT %s, c.id, c.id || ':' || k, (%s::text[])[1 + ((c.id * 7 + k * 13) %% %s)], "
            "%s::timestamptz - ((c.id * 31 + k * 97) %% 960) * interval '1 hour', '{}'::jsonb, now() "
            "FROM proactive_customer c, generate_series(1, 12) k WHERE c.tenant_id = %s",
            [tenant.pk, NAMES, len(NAMES), AS_OF, tenant.pk],
        )
        cur.execute(
            "INSERT INTO proactive_riskscore (tenant_id, customer_id, score, scored_at, reasons, rule_based) "
            "SELECT %s, id, ((id * 2654435761) %% 1000) / 1000.0, %s, '[]'::jsonb, true "
            "FROM proactive_customer WHERE tenant_id = %s",
            [tenant.pk, AS_OF, tenant.pk],
        )
    rollups_rebuild(tenant_id=tenant.pk)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--webhooks", action="store_true", help="also time runs owing webhook events")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    slug = f"bench-playbooks-{args.customers}"
    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
    if created:
        started = time.perf_counter()
        seed(tenant, args.customers)
        print(f"seeded {args.customers} customers in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    Outreach.objects.for_tenant(tenant).delete()
    Playbook.objects.for_tenant(tenant).delete()
    for i, trigger in enumerate(TRIGGERS):
        priority = ["low", "normal", "high"][i % 3]
        playbook_create(
            tenant=tenant,
            data={
                "name": f"Playbook {i:02d}",
                "trigger": trigger,
                "action": {**ACTION, "priority": priority},
            },
        )
    WebhookEndpoint.objects.for_tenant(tenant).delete()
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/bench", events=["outreach.created", "outreach.sent"],
        secret=new_secret(), enabled=False,
    )  # fmt: skip
    runs, hooked = [], []
    for _ in range(args.repeat):
        for with_hooks in (False, True) if args.webhooks else (False,):
            WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint.pk).update(enabled=with_hooks)
            WebhookDelivery.objects.for_tenant(tenant)._raw_delete(connection.alias)
            Outreach.objects.for_tenant(tenant).delete()
            started = time.perf_counter()
            result = playbooks_evaluate(tenant=tenant, as_of=AS_OF)
            total = time.perf_counter() - started
            owed = WebhookDelivery.objects.for_tenant(tenant).count()
            (hooked if with_hooks else runs).append(
                {"total": total, **result["seconds"], "fired": result["fired"], "deliveries": owed}
            )
    WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint.pk).update(enabled=False)
    with connection.cursor() as cur:
        cur.execute("ANALYZE campaigns_outreach")  # steady state: statistics that know the outreach
    started = time.perf_counter()
    rerun = playbooks_evaluate(tenant=tenant, as_of=AS_OF)
    rerun_total = time.perf_counter() - started
    last = result
    summary = {
        "customers": args.customers,
        "playbooks": Playbook.objects.for_tenant(tenant).count(),
        "repeat": args.repeat,
        "features_s_median": round(statistics.median(r["features"] for r in runs), 3),
        "firing_s_median": round(statistics.median(r["firing"] for r in runs), 3),
        "total_s_median": round(statistics.median(r["total"] for r in runs), 3),
        "firing_over_features": round(
            statistics.median(r["firing"] for r in runs) / statistics.median(r["features"] for r in runs), 3
        ),
        "fired": last["fired"],
        "by_status": {k: last[k] for k in ("sent", "pending_review", "held_out", "suppressed")},
        "fired_per_playbook": sorted(sum(c.values()) // 2 for c in last["playbooks"].values()),
        "rerun": {"total_s": round(rerun_total, 3), "fired": rerun["fired"], **rerun["seconds"]},
        "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in runs],
    }
    if hooked:
        summary["with_webhooks"] = {
            "firing_s_median": round(statistics.median(r["firing"] for r in hooked), 3),
            "firing_over_without": round(
                statistics.median(r["firing"] for r in hooked) / statistics.median(r["firing"] for r in runs),
                3,
            ),
            "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in hooked],
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
