"""The demo tenant's story, seeded by `make demo` (and by bench/pages_seed.py at other sizes).

Signals from the demo generator, four playbooks (one needs an agent's review), a campaign
for customers still on API v1, and a few weeks of pipeline history run as of past dates, so
every page has something to show: scores with reasons, outreach with elapsed windows,
a queue to work, messages in the widget. Then customers and agents "act" on some of it.
Idempotent: a second run only refreshes logins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from accounts.models import Membership, Tenant
from accounts.services import membership_set, tenant_create, user_get_or_create
from campaigns.campaign_sends import campaign_create
from campaigns.models import Campaign, Playbook
from campaigns.playbooks import playbook_create
from campaigns.queue import outreach_expire_overdue
from dashboard.snapshots import overview_refresh
from demo.data import generate_demo_data
from demo.outage import plant_outage
from pipeline.runs import run_pipeline
from proactive.ingest import rollups_rebuild
from proactive.models import Customer, PipelineRun

DEMO_SLUG = "demo"
ADMIN = ("admin@demo.test", "demo-admin-pass")
AGENT = ("agent@demo.test", "demo-agent-pass")


def _action(title: str, body: str, cta_label: str = "", cta_url: str = "", **extra: object) -> dict:
    return {
        "channel": "in_app",
        "title": title,
        "body": body,
        "cta_label": cta_label,
        "cta_url": cta_url,
        "requires_review": False,
        "priority": "normal",
        **extra,
    }


PLAYBOOKS = [
    {
        "name": "Stuck in onboarding",
        "trigger": {
            "all": [
                {"metric": "days_since_signup", "op": "gte", "value": 3},
                {"metric": "days_since_signup", "op": "lte", "value": 21},
                {"metric": "count(onboarding.step_completed, 365)", "op": "lt", "value": 3},
            ]
        },
        "action": _action(
            "Need a hand with setup?",
            "Hi {{ customer.name }}, most teams finish setup in **10 minutes** with this guide.",
            "Open the guide",
            "https://example.com/guide",
        ),
        "cooldown_days": 14,
        "holdout_percent": 20,
    },
    {
        "name": "Sync keeps failing",
        "trigger": {"all": [{"metric": "count(error.sync_failed, 3)", "op": "gte", "value": 2}]},
        "action": _action(
            "Your sync hit a snag",
            "Hi {{ customer.name }}, we saw your sync fail a few times. Here is how to fix it.",
            "Fix sync",
            "https://example.com/sync",
            priority="high",
        ),
        "cooldown_days": 14,
        "holdout_percent": 20,
    },
    {
        "name": "Activity is dropping",
        "trigger": {
            "all": [
                {"metric": "trend(session.*)", "op": "lt", "value": 0.5},
                {"metric": "days_since_signup", "op": "gte", "value": 30},
            ]
        },
        "action": _action(
            "New since you last looked",
            "Hi {{ customer.name }}, here are three things teams like yours use every week.",
            "See what's new",
            "https://example.com/whats-new",
            priority="low",
        ),
        "cooldown_days": 21,
        "holdout_percent": 20,
    },
    {
        "name": "High risk: agent check-in",
        "trigger": {"all": [{"metric": "risk_score", "op": "gte", "value": 0.3}]},
        "action": _action(
            "Can we help?",
            "Hi {{ customer.name }}, we noticed some trouble on your account. Reply here and a "
            "person from our team will look at it with you.",
            requires_review=True,
        ),
        "cooldown_days": 21,
        "holdout_percent": 10,
    },
]

CAMPAIGN = {
    "name": "API v1 retires in March",
    "audience": {"metric": "attribute.api_version", "op": "eq", "value": "v1"},
    "action": _action(
        "API v1 retires on March 1",
        "Hi {{ customer.name }}, your integration still calls **API v1**. Please move to v2.",
        "Migration guide",
        "https://example.com/v2",
    ),
    "holdout_percent": 10,
}

REJECT_REASONS = ["already talking to support", "customer is churning anyway", "wrong contact person"]


def demo_logins() -> str:
    return f"Logins: admin {ADMIN[0]} / {ADMIN[1]}   agent {AGENT[0]} / {AGENT[1]}"


def demo_seed(
    *, customers: int = 2000, days: int = 120, weeks: int = 6, log: Callable[[str], None] = print
) -> Tenant:
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    if tenant is None:
        tenant, _ = tenant_create(slug=DEMO_SLUG, name="Demo Software Inc.", reserved_ok=True)
    tenant.allowed_origins = ["http://127.0.0.1:8000", "http://localhost:8000"]
    tenant.save(update_fields=["allowed_origins"])
    membership_set(
        tenant=tenant, user=user_get_or_create(email=ADMIN[0], password=ADMIN[1]), role=Membership.Role.ADMIN
    )
    membership_set(
        tenant=tenant, user=user_get_or_create(email=AGENT[0], password=AGENT[1]), role=Membership.Role.AGENT
    )
    if not Customer.objects.for_tenant(tenant).exists():
        log(f"Generating {customers} customers x {days} days of signals...")
        summary = generate_demo_data(tenant=tenant, customers=customers, days=days, seed=1)
        log(f"  {summary.customers} customers, {summary.signals_stored} signals")
    for data in PLAYBOOKS:
        if not Playbook.objects.for_tenant(tenant).filter(name=data["name"]).exists():
            playbook_create(tenant=tenant, data=data)
    now = timezone.now()
    if not Campaign.objects.for_tenant(tenant).exists():
        campaign_create(tenant=tenant, data={**CAMPAIGN, "send_at": (now - timedelta(days=20)).isoformat()})
    if not PipelineRun.objects.for_tenant(tenant).exists():
        _play_history(tenant, now=now, weeks=weeks, log=log)
        plant_outage(tenant=tenant, now=now, log=log)
    return tenant


# The demo's story: setup guidance and troubleshooting help prevent a share of the contacts that
# would have followed (re-engagement nudges and agent check-ins do little). Generated signals
# know nothing of outreach, so without this every playbook would show noise around zero effect.
PREVENTED_PERCENT = {"Stuck in onboarding": 60, "Sync keeps failing": 50, "High risk: agent check-in": 20}


def _outreach_prevents_contacts(tenant: Tenant) -> int:
    """Remove that share of contact signals within 14 days after delivered outreach (chosen by a
    hash of the signal's key, so a re-seed removes the same ones); the holdout keeps all of theirs."""
    with connection.cursor() as cur:
        cur.execute(
            """
            DELETE FROM proactive_signal s USING campaigns_outreach o, campaigns_playbook p
            WHERE o.tenant_id = %s AND s.tenant_id = %s AND p.tenant_id = %s AND p.id = o.playbook_id
              AND o.status = 'sent' AND s.customer_id = o.customer_id AND s.name = ANY(%s)
              AND s.timestamp >= o.sent_at AND s.timestamp < o.sent_at + interval '14 days'
              AND ('x' || substr(md5(s.key), 1, 8))::bit(32)::bigint %% 100
                  < coalesce((%s::jsonb ->> p.name)::int, 0)
            """,
            [tenant.pk, tenant.pk, tenant.pk, list(tenant.contact_signals), json.dumps(PREVENTED_PERCENT)],
        )
        removed = cur.rowcount
    rollups_rebuild(tenant_id=tenant.pk)
    return removed


def _play_history(tenant: Tenant, *, now: datetime, weeks: int, log: Callable[[str], None]) -> None:
    """Run the pipeline as of past dates (training first), then let customers and agents react."""
    as_of = now - timedelta(weeks=weeks)
    steps = 0
    while as_of < now:
        run = run_pipeline(tenant=tenant, as_of=as_of, train=steps == 0, trigger="seed")
        log(f"  pipeline as of {as_of:%Y-%m-%d}: {run.status if run else 'skipped'}")
        as_of += timedelta(days=4)
        steps += 1
    prevented = _outreach_prevents_contacts(tenant)
    log(f"  {prevented} support contacts after delivered outreach did not happen (the demo's effect)")
    run = run_pipeline(tenant=tenant, as_of=now, train=True, trigger="seed")
    log(f"  pipeline as of now (with training): {run.status if run else 'skipped'}")
    with connection.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(
            """
            UPDATE campaigns_outreach SET seen_at = sent_at + interval '3 hours'
            WHERE tenant_id = %s AND sent_at IS NOT NULL AND sent_at < %s - interval '1 day'
              AND random() < 0.7;
            UPDATE campaigns_outreach SET clicked_at = seen_at + interval '1 minute'
            WHERE tenant_id = %s AND seen_at IS NOT NULL AND random() < 0.35;
            UPDATE campaigns_outreach SET dismissed_at = seen_at + interval '2 minutes'
            WHERE tenant_id = %s AND seen_at IS NOT NULL AND clicked_at IS NULL AND random() < 0.5;
            UPDATE campaigns_outreach
              SET feedback = CASE WHEN random() < 0.7 THEN 'helpful' ELSE 'not_helpful' END,
                  feedback_at = clicked_at + interval '5 minutes'
            WHERE tenant_id = %s AND clicked_at IS NOT NULL AND random() < 0.6;
            UPDATE campaigns_outreach
              SET status = 'rejected', reviewed_at = triggered_at + interval '2 hours',
                  reject_reason = (%s::text[])[1 + floor(random() * %s)::int]
            WHERE tenant_id = %s AND status = 'pending_review' AND triggered_at < %s - interval '2 days'
              AND random() < 0.6;
            """,
            [
                tenant.pk,
                now,
                tenant.pk,
                tenant.pk,
                tenant.pk,
                REJECT_REASONS,
                len(REJECT_REASONS),
                tenant.pk,
                now,
            ],
        )
    # What the beat schedule would have done meanwhile: reviews nobody took in time expire.
    log(f"  {outreach_expire_overdue(now=now)} unreviewed messages expired")
    overview_refresh(tenant=tenant)  # the overview shows the reactions above, not the run before them
