"""Recorded outreach outcomes: the same counts as the live effectiveness API, kept up to date
incrementally, recomputed when the contact signals change."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from campaigns.effectiveness import effectiveness
from campaigns.models import OutcomeSweep, Outreach
from campaigns.outcomes import OUTCOME_DAYS, outcome_counts, outcomes_sweep, sweep_get
from dashboard.effect_selectors import source_effect
from pipeline.runs import run_pipeline
from proactive.ingest import rollups_rebuild
from proactive.models import Signal
from tests.campaigns.helpers import make_customers
from tests.factories import OutreachFactory, PlaybookFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _outreach(tenant, customer, playbook, at, *, holdout=False, status=None, **extra) -> Outreach:
    return OutreachFactory(
        tenant=tenant,
        customer=customer,
        playbook=playbook,
        triggered_at=at,
        holdout=holdout,
        status=status or (Outreach.Status.HELD_OUT if holdout else Outreach.Status.SENT),
        **extra,
    )


def _signal(tenant, customer, name, at, key) -> None:
    Signal.objects.create(tenant=tenant, customer=customer, key=key, name=name, timestamp=at)


def _sweep(tenant) -> dict:
    """Signals made here bypass ingestion: rebuild the rollups it keeps, then sweep."""
    rollups_rebuild(tenant_id=tenant.pk)
    return outcomes_sweep(tenant=tenant)


def _arms(tenant, playbook, window_days, swept_at) -> dict:
    rows = outcome_counts(tenant=tenant, window_days=window_days, swept_at=swept_at, playbook=playbook)
    return {holdout: (n, contacted) for _, _, holdout, n, contacted, *_ in rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recorded_outcomes_count_what_the_live_api_counts(tenant, seed):
    """Random outreach and signals around every window edge: for windows from 1 to 90 days the
    recorded first contact gives the API's treated and holdout counts exactly."""
    rng = np.random.default_rng(seed)
    now = timezone.now()
    customers = make_customers(tenant, 60)
    playbook = PlaybookFactory(tenant=tenant)
    for i, customer in enumerate(customers):
        fired = now - timedelta(days=float(rng.uniform(0, 150)))
        status = Outreach.Status.SUPPRESSED if i % 11 == 0 else None
        _outreach(tenant, customer, playbook, fired, holdout=bool(rng.random() < 0.3), status=status)
        for k in range(int(rng.integers(0, 4))):
            # Offsets straddle the trigger time and the 1/3/14/90-day edges, to the second.
            edge = float(rng.choice([0, 1, 3, 14, 90, 100]))
            offset = timedelta(days=edge, seconds=int(rng.integers(-2, 3)))
            name = str(rng.choice(["support.contact", "support.chat", "error.sync_failed"]))
            _signal(tenant, customer, name, fired + offset, f"s{i}-{k}")
    tenant.contact_signals = ["support.contact", "support.chat"]
    tenant.save()
    result = _sweep(tenant)
    assert result["mode"] == "full" and result["checked"] == len(customers)
    swept_at = sweep_get(tenant=tenant).swept_at
    for window in [1, 3, 14, 30, OUTCOME_DAYS]:
        live = effectiveness(tenant=tenant, playbook=playbook, window_days=window, as_of=swept_at)
        recorded = _arms(tenant, playbook, window, swept_at)
        expected = {
            False: (live["treated"]["customers"], live["treated"]["contacted"]),
            True: (live["holdout"]["customers"], live["holdout"]["contacted"]),
        }
        assert {k: recorded.get(k, (0, 0)) for k in expected} == expected, window
        page = source_effect(tenant=tenant, window_days=window, swept_at=swept_at, playbook=playbook)
        assert page["treated"] == {
            **live["treated"],
            "rate": pytest.approx(live["treated"]["rate"], abs=1e-6),
        }
        assert page["relative_reduction"] == pytest.approx(live["relative_reduction"], abs=1e-6)
        assert page["engagement"] == live["engagement"]
        assert page["reached"] == live["reached"]
        assert page["effect_on_reached"] == live["effect_on_reached"]
    assert any(n for n in recorded.values()), "the world must have elapsed windows to compare"


def test_the_window_is_half_open_and_before_the_trigger_does_not_count(tenant):
    now = timezone.now()
    a, b, c, d = make_customers(tenant, 4)
    playbook = PlaybookFactory(tenant=tenant)
    fired = now - timedelta(days=30)
    for customer in (a, b, c, d):
        _outreach(tenant, customer, playbook, fired)
    _signal(tenant, a, "support.contact", fired, "at-trigger")  # counts
    _signal(tenant, b, "support.contact", fired + timedelta(days=14), "at-window-end")  # not in 14 days
    _signal(tenant, c, "support.contact", fired - timedelta(seconds=1), "before")  # never
    _signal(tenant, d, "support.contact", fired + timedelta(days=OUTCOME_DAYS), "too-late")  # never
    _sweep(tenant)
    recorded = {
        o.customer_id: o.first_contact_at
        for o in Outreach.objects.for_tenant(tenant).filter(playbook=playbook)
    }
    assert recorded == {a.pk: fired, b.pk: fired + timedelta(days=14), c.pk: None, d.pk: None}
    swept_at = sweep_get(tenant=tenant).swept_at
    assert _arms(tenant, playbook, 14, swept_at) == {False: (4, 1)}
    assert _arms(tenant, playbook, 15, swept_at) == {False: (4, 2)}
    with pytest.raises(ValueError, match="window_days"):
        _arms(tenant, playbook, OUTCOME_DAYS + 1, swept_at)


def test_sweeps_are_incremental_and_pick_up_late_signals(tenant):
    now = timezone.now()
    recent, old = make_customers(tenant, 2)
    playbook = PlaybookFactory(tenant=tenant)
    _outreach(tenant, recent, playbook, now - timedelta(days=20))
    _outreach(tenant, old, playbook, now - timedelta(days=400))
    assert _sweep(tenant) == {"mode": "full", "checked": 2, "changed": 0}
    first = sweep_get(tenant=tenant).swept_at

    # A contact that arrives late (its timestamp is in the past) is found by the next sweep;
    # rows whose 90 days had elapsed at the last sweep are no longer looked at.
    _signal(tenant, recent, "support.contact", now - timedelta(days=10), "late")
    assert _sweep(tenant) == {"mode": "incremental", "checked": 1, "changed": 1}
    assert sweep_get(tenant=tenant).swept_at > first
    assert _sweep(tenant) == {"mode": "incremental", "checked": 1, "changed": 0}

    # Outreach recorded since the last sweep is checked whenever it was triggered (a backfill).
    backfilled = _outreach(tenant, old, PlaybookFactory(tenant=tenant), now - timedelta(days=300))
    _signal(tenant, old, "support.contact", now - timedelta(days=299), "backfilled-contact")
    assert _sweep(tenant) == {"mode": "incremental", "checked": 2, "changed": 1}
    backfilled.refresh_from_db()
    assert backfilled.first_contact_at == now - timedelta(days=299)


def test_changing_the_contact_signals_recomputes_every_row(tenant):
    now = timezone.now()
    (customer,) = make_customers(tenant, 1)
    playbook = PlaybookFactory(tenant=tenant)
    row = _outreach(tenant, customer, playbook, now - timedelta(days=200))
    _signal(tenant, customer, "support.chat", now - timedelta(days=199), "chat")
    _sweep(tenant)
    row.refresh_from_db()
    assert row.first_contact_at is None
    tenant.contact_signals = ["support.*"]
    tenant.save()
    assert _sweep(tenant) == {"mode": "full", "checked": 1, "changed": 1}
    row.refresh_from_db()
    assert row.first_contact_at == now - timedelta(days=199)


def test_a_sweep_touches_only_its_tenant(tenant):
    other = TenantFactory(slug="other")
    now = timezone.now()
    (mine,) = make_customers(tenant, 1)
    (theirs,) = make_customers(other, 1, prefix="o")
    mine_row = _outreach(tenant, mine, PlaybookFactory(tenant=tenant), now - timedelta(days=20))
    their_row = _outreach(other, theirs, PlaybookFactory(tenant=other), now - timedelta(days=20))
    _signal(tenant, mine, "support.contact", now - timedelta(days=19), "m")
    _signal(other, theirs, "support.contact", now - timedelta(days=19), "t")
    assert _sweep(tenant)["changed"] == 1
    mine_row.refresh_from_db()
    their_row.refresh_from_db()
    assert mine_row.first_contact_at is not None and their_row.first_contact_at is None
    assert sweep_get(tenant=other) is None
    assert OutcomeSweep.objects.for_tenant(tenant).count() == 1


def test_every_pipeline_run_sweeps_outcomes(tenant):
    run = run_pipeline(tenant=tenant)
    step = next(s for s in run.steps if s["name"] == "outcomes")
    assert step["status"] == "ok" and step["counts"]["mode"] == "full"
    run = run_pipeline(tenant=tenant)
    assert next(s for s in run.steps if s["name"] == "outcomes")["counts"]["mode"] == "incremental"
