"""Server time of the tenant pages for a tenant with 100,000 customers.

    DATABASE_URL=... DEBUG=1 .venv/bin/python bench/pages_timing.py [--customers 100000]

Fills a `bench-pages` tenant set-based in SQL (customers, current and daily scores, signals,
three playbooks' outreach over 12 weeks, runs, an active model), times the outcomes sweep
and the overview snapshot that every pipeline run ends with, then renders every page
through the test client and prints, per page, the median of 5 requests with the page cache
cleared before each one (cold: what the first visitor waits) and of 5 with it kept (warm),
and the query count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
django.setup()

from django.core.cache import cache  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Membership, Tenant  # noqa: E402
from accounts.services import membership_set, user_get_or_create  # noqa: E402
from campaigns.models import Campaign, Playbook  # noqa: E402
from campaigns.outcomes import outcomes_sweep  # noqa: E402
from dashboard.snapshots import overview_refresh  # noqa: E402
from proactive.ingest import rollups_rebuild  # noqa: E402
from proactive.models import Customer, PipelineRun, RiskModel  # noqa: E402

SLUG = "bench-pages"


def fill(tenant: Tenant, n: int) -> None:
    now = timezone.now()
    t = tenant.pk
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO proactive_customer (tenant_id, external_id, name, email, signed_up_at, attributes,
                                            created_at, updated_at)
            SELECT %s, 'b' || lpad(i::text, 7, '0'), 'Customer ' || i, 'c' || i || '@example.test',
                   %s - (i %% 400) * interval '1 day', '{"plan": "pro"}', %s, %s
            FROM generate_series(1, %s) i
            """,
            [t, now, now, now, n],
        )
        model = RiskModel.objects.create(
            tenant=tenant,
            version=1,
            status="active",
            target="contact",
            horizon_days=14,
            as_of=now - timedelta(days=10),
            training_rows=n,
            metrics={
                "auc": 0.8,
                "pr_auc": 0.4,
                "brier": 0.09,
                "base_rate": 0.1,
                "calibration_table": [{"n": 100, "predicted": p / 10, "observed": p / 11} for p in range(10)],
            },
            feature_names=["count(error.*, 3)"],
            feature_importance={"count(error.*, 3)": 1.0},
        )
        cur.execute(
            """
            INSERT INTO proactive_riskscore
                (tenant_id, customer_id, model_id, score, scored_at, reasons, rule_based)
            SELECT %s, id, %s, random() * random(), %s, '[]', false
            FROM proactive_customer WHERE tenant_id = %s
            """,
            [t, model.pk, now, t],
        )
        cur.execute(
            """
            INSERT INTO proactive_riskscoredaily (tenant_id, customer_id, day, score, model_version)
            SELECT %s, c.id, (%s::date - d), random() * 0.3, 1
            FROM proactive_customer c CROSS JOIN generate_series(0, 29) d WHERE c.tenant_id = %s
            """,
            [t, now, t],
        )
        cur.execute(
            """
            INSERT INTO proactive_signal
                (tenant_id, customer_id, key, name, timestamp, properties, received_at)
            SELECT %s, c.id, 'k' || c.id || '-' || s, (ARRAY['session.started', 'error.sync_failed',
                   'support.contact'])[1 + (s %% 3)], %s - (s * 7 + c.id %% 5) * interval '1 day', '{}', %s
            FROM proactive_customer c CROSS JOIN generate_series(0, 11) s WHERE c.tenant_id = %s
            """,
            [t, now, now, t],
        )
        rollups_rebuild(tenant_id=t)  # what ingestion keeps: daily counts and the name catalogue
        playbooks = [
            Playbook.objects.create(
                tenant=tenant,
                name=f"Bench playbook {i}",
                trigger={"metric": "count(error.*, 3)", "op": "gte", "value": 2},
                action={"title": "Hi"},
            )
            for i in range(3)
        ]
        for i, pb in enumerate(playbooks):
            cur.execute(
                """
                INSERT INTO campaigns_outreach (id, tenant_id, customer_id, playbook_id, dedupe_key, channel,
                    status, holdout, priority, triggered_at, context, title, body, cta_label, cta_url,
                    suppressed_reason, reject_reason, feedback, created_at, sent_at, seen_at)
                SELECT gen_random_uuid(), %s, c.id, %s, %s || ':' || c.id, 'in_app',
                       CASE WHEN c.id %% 10 = 0 THEN 'held_out' WHEN c.id %% 23 = 0 THEN 'suppressed'
                            WHEN c.id %% 17 = 0 THEN 'rejected' ELSE 'sent' END,
                       c.id %% 10 = 0, 1, %s - (c.id %% 84) * interval '1 day', '{}', 'Hi', '', '', '',
                       CASE WHEN c.id %% 23 = 0 THEN 'contact budget' ELSE '' END,
                       CASE WHEN c.id %% 17 = 0 THEN 'not relevant' ELSE '' END, '', %s,
                       CASE WHEN c.id %% 10 <> 0 THEN %s - (c.id %% 84) * interval '1 day' END,
                       CASE WHEN c.id %% 3 = 0 THEN %s - (c.id %% 84) * interval '1 day' END
                FROM proactive_customer c WHERE c.tenant_id = %s AND c.id %% 4 = %s
                """,
                [t, pb.pk, str(pb.pk), now, now, now, now, t, i],
            )
        Campaign.objects.create(
            tenant=tenant,
            name="Bench campaign",
            audience={"metric": "attribute.plan", "op": "eq", "value": "pro"},
            action={"title": "Hi"},
            send_at=now,
        )
        for k in range(30):
            PipelineRun.objects.create(
                tenant=tenant,
                kind="score",
                status="succeeded",
                window_key=f"b{k}",
                as_of=now,
                finished_at=now,
                steps=[{"name": "score", "status": "ok", "seconds": 1.0, "counts": {"scored": n}}],
                summary={"seconds": 1.0},
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        started = time.perf_counter()
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=SLUG, name="Bench pages")
            fill(tenant, args.customers)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print(f"filled {args.customers} customers in {time.perf_counter() - started:.0f} s", flush=True)
    for label in ("first", "next"):
        started = time.perf_counter()
        result = outcomes_sweep(tenant=tenant)
        print(f"outcomes sweep ({label}): {time.perf_counter() - started:.2f} s {result}", flush=True)
    started = time.perf_counter()
    overview_refresh(tenant=tenant)
    print(f"overview snapshot (the pipeline's pages step): {time.perf_counter() - started:.2f} s", flush=True)
    user = user_get_or_create(email="bench-pages@example.test", password="bench-pages-pass")  # noqa: S106 (a local bench login)
    membership_set(tenant=tenant, user=user, role=Membership.Role.ADMIN)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    playbook = Playbook.objects.for_tenant(tenant).order_by("name").first()
    campaign = Campaign.objects.for_tenant(tenant).first()
    customer = Customer.objects.for_tenant(tenant).order_by("pk").first()
    run = PipelineRun.objects.for_tenant(tenant).order_by("-pk").first()
    base = f"/t/{SLUG}"
    paths = [
        "/",
        "/model/",
        "/customers/",
        "/customers/?q=Customer 4242",
        f"/customers/{customer.external_id}/",
        "/runs/",
        f"/runs/{run.pk}/",
        "/fatigue/",
        "/playbooks/",
        f"/playbooks/{playbook.pk}/",
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
    ]
    print(f"{'page':40} {'cold ms':>8} {'cold max':>8} {'warm ms':>8} {'queries':>8}")
    for path in paths:
        client.get(base + path)
        cold, warm = [], []
        for clear, times in [(True, cold)] * 5 + [(False, warm)] * 5:
            if clear:
                cache.clear()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(base + path)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        print(
            f"{path[:40]:40} {statistics.median(cold):8.1f} {max(cold):8.1f} {statistics.median(warm):8.1f}"
            f" {len(queries.captured_queries):8d}"
        )


if __name__ == "__main__":
    main()
