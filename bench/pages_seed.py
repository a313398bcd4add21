"""Seed a tenant with weeks of realistic history for the tenant pages (screenshots, timings).

    DATABASE_URL=... DEBUG=1 .venv/bin/python bench/pages_seed.py --tenant demo --customers 2000

Generates signals (generate_demo_data), three playbooks and a campaign, runs the pipeline as
of every few days over the past weeks (training first) so outreach has elapsed windows, then
plays the part of customers and agents: some messages seen, clicked, dismissed, rated, and
some reviews rejected with reasons. Idempotent enough to rerun on the same database.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from campaigns.models import Campaign, Playbook  # noqa: E402
from campaigns.services import campaign_create, playbook_create  # noqa: E402
from proactive.scoring.pipeline import run_pipeline  # noqa: E402

PLAYBOOKS = [
    {
        "name": "Sync keeps failing",
        "trigger": {"all": [{"metric": "count(error.sync_failed, 3)", "op": "gte", "value": 2}]},
        "action": {
            "channel": "in_app",
            "title": "Your sync hit a snag",
            "body": "Hi {{ customer.name }}, here is how to fix it.",
            "cta_label": "Fix sync",
            "cta_url": "https://example.com/sync",
            "requires_review": False,
            "priority": "high",
        },
        "cooldown_days": 14,
        "holdout_percent": 20,
    },
    {
        "name": "Stuck in onboarding",
        "trigger": {
            "all": [
                {"metric": "days_since_signup", "op": "gte", "value": 3},
                {"metric": "days_since_signup", "op": "lte", "value": 21},
                {"metric": "count(onboarding.step_completed, 365)", "op": "lt", "value": 3},
            ]
        },
        "action": {
            "channel": "in_app",
            "title": "Need a hand with setup?",
            "body": "Hi {{ customer.name }}, a short guide.",
            "cta_label": "Open the guide",
            "cta_url": "https://example.com/guide",
            "requires_review": False,
            "priority": "normal",
        },
        "cooldown_days": 14,
        "holdout_percent": 20,
    },
    {
        "name": "High risk, agent check-in",
        "trigger": {"all": [{"metric": "risk_score", "op": "gte", "value": 0.3}]},
        "action": {
            "channel": "in_app",
            "title": "Can we help?",
            "body": "Hi {{ customer.name }}, we noticed some trouble.",
            "cta_label": "",
            "cta_url": "",
            "requires_review": True,
            "priority": "normal",
        },
        "cooldown_days": 21,
        "holdout_percent": 10,
    },
]

REJECT_REASONS = ["already talking to support", "customer is churning anyway", "wrong contact person", ""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--weeks", type=int, default=10, help="weeks of pipeline history")
    args = parser.parse_args()
    call_command("seed_demo")
    tenant = Tenant.objects.get(slug=args.tenant)
    call_command("generate_demo_data", tenant=args.tenant, customers=args.customers, days=args.days, seed=5)
    for data in PLAYBOOKS:
        if not Playbook.objects.for_tenant(tenant).filter(name=data["name"]).exists():
            playbook_create(tenant=tenant, data=data)
    now = timezone.now()
    if not Campaign.objects.for_tenant(tenant).exists():
        campaign_create(
            tenant=tenant,
            data={
                "name": "API v1 sunset notice",
                "audience": {"metric": "attribute.api_version", "op": "eq", "value": "v1"},
                "action": {
                    "channel": "in_app",
                    "title": "API v1 retires in June",
                    "body": "Please move to v2.",
                    "cta_label": "Migration guide",
                    "cta_url": "https://example.com/v2",
                },
                "send_at": (now - timedelta(days=30)).isoformat(),
                "holdout_percent": 10,
            },
        )
    start = now - timedelta(weeks=args.weeks)
    as_of, first = start, True
    while as_of < now:
        run = run_pipeline(tenant=tenant, as_of=as_of, train=first, trigger="seed")
        print(as_of.isoformat(), run and run.status, flush=True)
        first = False
        as_of += timedelta(days=3)
    run_pipeline(tenant=tenant, as_of=now, train=True, trigger="seed")
    with connection.cursor() as cur:
        # Customers engage with what they received; agents decide some of the reviews.
        cur.execute(
            """
            UPDATE campaigns_outreach SET
              seen_at = CASE WHEN random() < 0.7 THEN sent_at + interval '3 hours' END
            WHERE tenant_id = %s AND sent_at IS NOT NULL AND seen_at IS NULL;
            UPDATE campaigns_outreach SET clicked_at = seen_at + interval '1 minute'
            WHERE tenant_id = %s AND seen_at IS NOT NULL AND clicked_at IS NULL AND random() < 0.35;
            UPDATE campaigns_outreach SET dismissed_at = seen_at + interval '2 minutes'
            WHERE tenant_id = %s AND seen_at IS NOT NULL AND clicked_at IS NULL AND random() < 0.4;
            UPDATE campaigns_outreach
              SET feedback = CASE WHEN random() < 0.7 THEN 'helpful' ELSE 'not_helpful' END,
              feedback_at = clicked_at + interval '5 minutes'
            WHERE tenant_id = %s AND clicked_at IS NOT NULL AND feedback = '' AND random() < 0.6;
            """,
            [tenant.pk] * 4,
        )
        cur.execute(
            """
            UPDATE campaigns_outreach
              SET status = 'rejected', reviewed_at = triggered_at + interval '2 hours',
              reject_reason = (%s::text[])[1 + floor(random() * %s)::int]
            WHERE tenant_id = %s AND status = 'pending_review' AND triggered_at < %s AND random() < 0.6
            """,
            [REJECT_REASONS, len(REJECT_REASONS), tenant.pk, now - timedelta(days=2)],
        )
    print("seeded", tenant.slug)


if __name__ == "__main__":
    main()
