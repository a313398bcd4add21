from __future__ import annotations

import random
from datetime import timedelta

import pytest

from campaigns.playbooks import playbook_backtest, playbook_preview
from proactive.ingest import rollups_rebuild
from proactive.models import Customer, Signal
from tests.campaigns.helpers import T0, add_signals, make_customers


def test_backtest_reports_the_precision_of_the_trigger(tenant):
    matching = make_customers(tenant, 20, prefix="m")
    others = make_customers(tenant, 30, prefix="o")
    add_signals(tenant, matching, "error.sync_failed", T0 - timedelta(days=10) + timedelta(hours=1))
    add_signals(tenant, matching[:5] + others[:3], "support.contact", T0 - timedelta(days=6, hours=1))
    result = playbook_backtest(
        tenant=tenant,
        trigger={"metric": "count(error.*, 3)", "op": "gte", "value": 1},
        days=12,
        window_days=3,
        as_of=T0,
    )
    matched_days = [r for r in result["days"] if r["matched"]]
    assert [r["as_of"] for r in matched_days] == [(T0 - timedelta(days=k)).isoformat() for k in (9, 8, 7)]
    assert all(r["matched"] == 20 and r["contacted"] == 5 for r in matched_days)
    assert (result["matched"], result["contacted"], result["precision"]) == (60, 15, 0.25)
    assert result["base_rate"] == pytest.approx(24 / (50 * 10))
    assert [r["complete"] for r in result["days"]][-3:] == [True, False, False]


def test_preview_matches_a_reference_evaluation(tenant):
    """Random customers and signals; the preview count equals a plain Python evaluation."""
    rng = random.Random(3)
    customers = make_customers(tenant, 300)
    truth = {}
    signals = []
    for c in customers:
        signup = rng.randint(0, 30)
        errors = rng.choice([0, 0, 1, 2, 3, 5])
        plan = rng.choice(["free", "pro", None])
        c.signed_up_at = T0 - timedelta(days=signup, hours=1)
        c.attributes = {"plan": plan} if plan else {}
        for k in range(errors):
            at = T0 - timedelta(days=rng.choice([0, 1, 3, 6]), hours=rng.randint(1, 20))
            signals.append(Signal(tenant=tenant, customer=c, key=f"{c.pk}-{k}", name="error.x", timestamp=at))
        truth[c.external_id] = (signup, [s.timestamp for s in signals if s.customer is c], plan)
    Customer.objects.for_tenant(tenant).bulk_update(customers, ["signed_up_at", "attributes"])
    Signal.objects.bulk_create(signals)
    rollups_rebuild(tenant_id=tenant.pk)
    trigger = {
        "any": [
            {
                "all": [
                    {"metric": "days_since_signup", "op": "gte", "value": 5},
                    {"metric": "count(error.*, 7)", "op": "gte", "value": 2},
                ]
            },
            {
                "all": [
                    {"metric": "attribute.plan", "op": "eq", "value": "pro"},
                    {"not": {"metric": "days_since_last(error.*)", "op": "lt", "value": 2}},
                ]
            },
        ]
    }

    def reference(signup, times, plan):
        recent = sum(1 for t in times if T0 - timedelta(days=7) < t <= T0)
        last = max(times, default=None)
        no_recent_error = last is None or (T0 - last) >= timedelta(days=2)
        return (signup >= 5 and recent >= 2) or (plan == "pro" and no_recent_error)

    expected = sorted(ext for ext, row in truth.items() if reference(*row))
    result = playbook_preview(tenant=tenant, trigger=trigger, as_of=T0, sample_size=1000)
    assert 20 < result["matching"] < 280
    assert result["matching"] == len(expected)
    assert result["sample"] == expected
