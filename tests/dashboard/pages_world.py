"""A small tenant with something on every page: scores, a model, runs, outreach of every fate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Campaign, Outreach, Playbook
from campaigns.outcomes import outcomes_sweep
from dashboard.snapshots import overview_refresh
from proactive.ingest import rollups_rebuild
from proactive.models import PipelineRun, RiskModel, RiskScore, RiskScoreDaily
from tests.factories import CampaignFactory, CustomerFactory, OutreachFactory, PlaybookFactory, SignalFactory


@dataclass
class PagesWorld:
    playbook: Playbook
    harmful: Playbook
    campaign: Campaign
    run: PipelineRun
    running: PipelineRun


def build_pages_world(tenant: Tenant, customers: int = 40) -> PagesWorld:
    now = timezone.now()
    fired = now - timedelta(days=30)
    people = [
        CustomerFactory(
            tenant=tenant,
            external_id=f"p{i:03d}",
            name=f"Person {i}",
            attributes={"plan": "pro"},
            signed_up_at=now - timedelta(days=200),
        )
        for i in range(customers)
    ]
    model = RiskModel.objects.create(
        tenant=tenant,
        version=1,
        status="active",
        target="contact",
        horizon_days=14,
        as_of=now - timedelta(days=20),
        training_rows=800,
        metrics={
            "auc": 0.81,
            "pr_auc": 0.44,
            "brier": 0.08,
            "base_rate": 0.12,
            "distinct_scores": 97,
            "baselines": {
                "bgnbd": {"auc": 0.736, "pr_auc": 0.31, "brier": 0.09, "distinct_scores": 60},
                "xgb_counts": {"auc": 0.772, "pr_auc": 0.35, "brier": 0.085, "distinct_scores": 80},
            },
            "calibration_table": [
                {"n": 50, "predicted": 0.05, "observed": 0.04},
                {"n": 50, "predicted": 0.3, "observed": 0.33},
            ],
        },
        feature_names=["count(error.*, 3)", "days_since_signup"],
        feature_importance={"count(error.*, 3)": 0.7, "days_since_signup": 0.3},
    )
    for i, person in enumerate(people):
        RiskScore.objects.create(
            tenant=tenant,
            customer=person,
            model=model,
            score=i / (customers * 2),
            scored_at=now,
            reasons=[{"feature": "count(error.*, 3)", "value": 3, "contribution": 0.4}],
        )
        RiskScoreDaily.objects.create(
            tenant=tenant, customer=person, day=now.date() - timedelta(days=1), score=i / (customers * 2)
        )
    # A signal the model has known for months, and one it has never seen (drift); the rollups
    # and the name catalogue come from rollups_rebuild below, as ingestion would keep them.
    SignalFactory(
        tenant=tenant, customer=people[-1], name="error.sync_failed", timestamp=now - timedelta(days=90)
    )
    for _ in range(3):
        SignalFactory(tenant=tenant, customer=people[0], name="error.sync_failed", timestamp=now)
    for _ in range(2):
        SignalFactory(
            tenant=tenant, customer=people[0], name="feature.brand_new", timestamp=now - timedelta(days=2)
        )
    playbook = PlaybookFactory(tenant=tenant, name="Sync keeps failing")
    harmful = PlaybookFactory(tenant=tenant, name="Annoying nudge")
    campaign = CampaignFactory(
        tenant=tenant, name="API v1 sunset", status=Campaign.Status.SENT, sent_at=fired
    )
    half = customers // 2
    for i, person in enumerate(people):
        holdout = i % 4 == 0
        status = Outreach.Status.HELD_OUT if holdout else Outreach.Status.SENT
        OutreachFactory(
            tenant=tenant,
            customer=person,
            playbook=playbook,
            status=status,
            holdout=holdout,
            triggered_at=fired,
            sent_at=None if holdout else fired,
            seen_at=None if holdout else fired,
            feedback="not_helpful" if i % 5 == 1 else "",
        )
        # The harmful playbook: everyone treated contacts support, nobody held out does.
        OutreachFactory(
            tenant=tenant,
            customer=person,
            playbook=harmful,
            status=Outreach.Status.HELD_OUT if i >= half else Outreach.Status.SENT,
            holdout=i >= half,
            triggered_at=fired,
            sent_at=None if i >= half else fired,
        )
        if i < half:
            SignalFactory(
                tenant=tenant, customer=person, name="support.contact", timestamp=fired + timedelta(days=2)
            )
        OutreachFactory(
            tenant=tenant,
            customer=person,
            playbook=None,
            campaign=campaign,
            status=Outreach.Status.SENT,
            triggered_at=fired,
            sent_at=fired,
        )
    OutreachFactory(
        tenant=tenant,
        customer=people[1],
        playbook=playbook,
        status=Outreach.Status.SUPPRESSED,
        suppressed_reason="contact budget: 2 per 7 days",
        triggered_at=now - timedelta(days=1),
    )
    for i in range(12):
        OutreachFactory(
            tenant=tenant,
            customer=people[i % len(people)],
            playbook=harmful,
            status=Outreach.Status.REJECTED,
            reject_reason="customer is already talking to support",
            reviewed_at=now,
            triggered_at=now - timedelta(days=2),
        )
    OutreachFactory(
        tenant=tenant,
        customer=people[2 % customers],
        playbook=playbook,
        status=Outreach.Status.PENDING_REVIEW,
    )
    run = PipelineRun.objects.create(
        tenant=tenant,
        kind="train",
        status="succeeded",
        window_key="w1",
        as_of=now - timedelta(hours=2),
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=12),
        steps=[
            {"name": "features", "status": "ok", "counts": {"features": 40}, "seconds": 0.5},
            {"name": "score", "status": "failed", "error": "ValueError: boom", "seconds": 1.0},
        ],
        summary={"seconds": 12.0},
        error="Traceback: ValueError: boom",
    )
    running = PipelineRun.objects.create(
        tenant=tenant,
        kind="score",
        window_key="w2",
        as_of=now,
        steps=[{"name": "features", "status": "ok", "counts": {"features": 40}, "seconds": 0.5}],
        progress={"step": "score", "chunks_done": 1, "chunks": 4, "scored": 10},
    )
    # What every pipeline run does last: pages read the outcomes and the overview's aggregates.
    rollups_rebuild(tenant_id=tenant.pk)  # the factories' signals bypassed ingestion
    outcomes_sweep(tenant=tenant)
    overview_refresh(tenant=tenant)
    return PagesWorld(playbook=playbook, harmful=harmful, campaign=campaign, run=run, running=running)
