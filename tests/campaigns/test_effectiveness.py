from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.effectiveness import (
    complier_effect,
    effectiveness,
    engagement_counts,
    mantel_haenszel_stats,
    reached_payload,
    risk_ratio_stats,
)
from campaigns.firing import playbooks_evaluate
from campaigns.models import Outreach
from campaigns.outcomes import outcomes_sweep
from proactive.ingest import rollups_rebuild
from proactive.models import Signal
from tests.campaigns.helpers import make_customers
from tests.dashboard.test_pages import client_for
from tests.factories import CampaignFactory, OutreachFactory, PlaybookFactory


def test_it_matches_a_worked_example():
    stats = risk_ratio_stats(treated=100, treated_contacted=10, holdout=100, holdout_contacted=20)
    assert stats["relative_reduction"] == pytest.approx(0.5)
    # RR = 0.5, se = sqrt(1/10 - 1/100 + 1/20 - 1/100) = 0.36056
    assert stats["ci95"] == pytest.approx([1 - 1.0134, 1 - 0.2467], abs=1e-3)
    assert stats["p_value"] == pytest.approx(0.0546, abs=1e-3)
    assert stats["backfiring"] is False


def test_a_zero_cell_gets_a_continuity_correction():
    stats = risk_ratio_stats(treated=50, treated_contacted=0, holdout=50, holdout_contacted=5)
    assert stats["relative_reduction"] == 1.0
    lo, hi = stats["ci95"]
    assert math.isfinite(lo) and lo < 1.0 and hi < 1.0
    assert risk_ratio_stats(treated=10, treated_contacted=0, holdout=0, holdout_contacted=0)["ci95"] is None


def test_a_playbook_whose_treated_contact_more_is_flagged():
    stats = risk_ratio_stats(treated=900, treated_contacted=300, holdout=100, holdout_contacted=15)
    assert stats["backfiring"] is True
    assert stats["ci95"][1] < 0


def _simulate(rng, *, n=2000, holdout_share=0.1, base=0.3, effect=0.5):
    holdout = rng.random(n) < holdout_share
    rate = np.where(holdout, base, base * (1 - effect))
    contacted = rng.random(n) < rate
    return risk_ratio_stats(
        treated=int((~holdout).sum()),
        treated_contacted=int((contacted & ~holdout).sum()),
        holdout=int(holdout.sum()),
        holdout_contacted=int((contacted & holdout).sum()),
    )


def test_the_interval_covers_a_true_halving_in_at_least_90_percent_of_seeds():
    covered = 0
    seeds = range(300)
    for seed in seeds:
        lo, hi = _simulate(np.random.default_rng(seed), effect=0.5)["ci95"]
        covered += lo <= 0.5 <= hi
    assert covered / len(seeds) >= 0.90


def test_an_ineffective_playbooks_interval_covers_zero():
    covered = 0
    seeds = range(300)
    for seed in seeds:
        lo, hi = _simulate(np.random.default_rng(seed), effect=0.0)["ci95"]
        covered += lo <= 0 <= hi
    assert covered / len(seeds) >= 0.90
    lo, hi = _simulate(np.random.default_rng(1), effect=0.0)["ci95"]
    assert lo <= 0 <= hi


def test_end_to_end_through_the_database_finds_a_strong_effect(tenant):
    """Fire a 30% holdout playbook, draw contacts (holdout 40%, treated 20%), measure.

    The arms come from a hash that includes the playbook's random id, so the draw differs per
    run: this checks the counts exactly and a z of ~7.5 (never missed by chance); whether the
    interval covers the truth ~95% of the time is the seeded simulation above."""
    customers = make_customers(tenant, 1500, signed_up_days_ago=60)
    playbook = PlaybookFactory(
        tenant=tenant, holdout_percent=30, trigger={"metric": "days_since_signup", "op": "gte", "value": 1}
    )
    fired_at = timezone.now() - timedelta(days=20)
    playbooks_evaluate(tenant=tenant, as_of=fired_at)
    arms = dict(Outreach.objects.for_tenant(tenant).values_list("customer_id", "holdout"))
    rng = np.random.default_rng(7)
    by_id = {c.pk: c for c in customers}
    signals = []
    for customer_id, held in sorted(arms.items()):
        if rng.random() < (0.4 if held else 0.2):
            at = fired_at + timedelta(days=float(rng.uniform(0, 13.9)))
            signals.append(
                Signal(
                    tenant=tenant,
                    customer=by_id[customer_id],
                    key=f"c{customer_id}",
                    name="support.contact",
                    timestamp=at,
                )
            )
    Signal.objects.bulk_create(signals)
    rollups_rebuild(tenant_id=tenant.pk)
    result = effectiveness(tenant=tenant, playbook=playbook, window_days=14)
    contacted = {s.customer.pk for s in signals}
    for held, arm in [(True, "holdout"), (False, "treated")]:
        ids = {c for c, h in arms.items() if h == held}
        assert result[arm]["customers"] == len(ids)
        assert result[arm]["contacted"] == len(ids & contacted)
    assert result["treated"]["customers"] + result["holdout"]["customers"] == 1500
    assert 0.25 < result["holdout"]["customers"] / 1500 < 0.35
    lo, hi = result["ci95"]
    assert 0 < lo < result["relative_reduction"] < hi
    assert result["p_value"] < 0.001


def test_mantel_haenszel_with_one_stratum_is_the_crude_comparison():
    crude = risk_ratio_stats(treated=900, treated_contacted=90, holdout=100, holdout_contacted=15)
    pooled = mantel_haenszel_stats([(900, 90, 100, 15)])
    assert pooled["relative_reduction"] == pytest.approx(crude["relative_reduction"], abs=1e-6)
    assert pooled["ci95"] == pytest.approx(crude["ci95"], abs=1e-6)
    assert pooled["p_value"] == pytest.approx(crude["p_value"], abs=1e-6)


def test_mantel_haenszel_is_not_fooled_by_playbooks_with_different_holdouts():
    """Neither playbook changes anything, but the risky one holds out 10% and the calm one 50%:
    raw pooled counts make outreach look harmful; the stratified estimate says no effect."""
    risky, calm = (900, 270, 100, 30), (500, 25, 500, 25)
    crude = risk_ratio_stats(
        treated=900 + 500, treated_contacted=270 + 25, holdout=100 + 500, holdout_contacted=30 + 25
    )
    assert crude["backfiring"] is True and crude["relative_reduction"] < -1
    pooled = mantel_haenszel_stats([risky, calm])
    assert pooled["relative_reduction"] == pytest.approx(0, abs=1e-9)
    assert pooled["ci95"][0] < 0 < pooled["ci95"][1] and pooled["backfiring"] is False


def test_mantel_haenszel_matches_a_worked_example():
    # R = 15*10/40 + 20*20/40 = 13.75, S = 5*30/40 + 0 = 3.75, RR = 3.667;
    # Var(log RR) = ((30*10*20 - 15*5*40) / 40**2 + (20*20*20 - 0) / 40**2) / (R * S) = 0.13333.
    stats = mantel_haenszel_stats([(30, 15, 10, 5), (20, 20, 20, 0)])
    assert stats["relative_reduction"] == pytest.approx(1 - 13.75 / 3.75, abs=1e-6)
    se = math.sqrt(6.875 / (13.75 * 3.75))
    lo, hi = math.log(13.75 / 3.75) - 1.959964 * se, math.log(13.75 / 3.75) + 1.959964 * se
    assert stats["ci95"] == pytest.approx([1 - math.exp(hi), 1 - math.exp(lo)], abs=1e-5)
    assert stats["backfiring"] is True
    # Strata without both arms carry no comparison; none at all means no estimate.
    assert mantel_haenszel_stats([(30, 15, 10, 5), (7, 7, 0, 0)]) == mantel_haenszel_stats([(30, 15, 10, 5)])
    assert mantel_haenszel_stats([(7, 7, 0, 0)])["ci95"] is None


def test_the_complier_effect_matches_a_hand_worked_example():
    """400 assigned, 200 of them delivered; 80 assigned contacted support (20 delivered, 60 not),
    120 of 400 held out did. By assignment p1 = 0.20 vs p0 = 0.30, delivered share d = 0.5:
    absolute effect on the reached = 0.10 / 0.5 = 0.20. The reached would have contacted at
    (p0 - 60/400) / d = 0.30 and did at 20/200 = 0.10: relative reduction 2/3.
    Delta method, B = p0 - u = 0.15: v0 = .3*.7/400 = .000525, Var(ITT) = v0 + .2*.8/400 = .000925,
    Var(B) = v0 + .15*.85/400 = .00084375, Cov = v0 + .15*.8/400 = .000825;
    Var(rel) = (.000925 - 2(2/3).000825 + (4/9).00084375) / .15^2 = .0002 / .0225, se = 0.0942809."""
    effect = complier_effect(
        treated=400,
        treated_contacted=80,
        holdout=400,
        holdout_contacted=120,
        delivered=200,
        delivered_contacted=20,
    )
    assert effect["absolute_reduction"] == pytest.approx(0.2)
    assert effect["relative_reduction"] == pytest.approx(2 / 3, abs=1e-6)
    se = 0.0942809
    assert effect["ci95"] == pytest.approx([2 / 3 - 1.959964 * se, 2 / 3 + 1.959964 * se], abs=1e-5)
    payload = reached_payload(
        treated=400,
        treated_contacted=80,
        holdout=400,
        holdout_contacted=120,
        delivered=200,
        delivered_contacted=20,
    )
    assert payload["reached"] == {"customers": 200, "share": 0.5}
    assert payload["effect_on_reached"] == effect


@pytest.mark.parametrize("delivered", [0, 9, 50])
def test_no_complier_effect_when_too_few_were_delivered(delivered):
    """Fewer than 10 delivered, or under a fifth of those assigned: nothing is claimed."""
    counts = {"treated": 400, "treated_contacted": 80, "holdout": 400, "holdout_contacted": 120}
    payload = reached_payload(delivered=delivered, delivered_contacted=0, **counts)
    assert payload["effect_on_reached"] is None
    assert payload["reached"]["customers"] == delivered


def test_a_review_playbook_with_nothing_delivered_never_claims_an_effect_on_reached_customers(tenant):
    """Agents rejected or let expire every assigned message: the API reports 0 reached and no
    complier effect, and the page says so instead of an effect "among customers reached"."""
    customers = make_customers(tenant, 40, signed_up_days_ago=60)
    playbook = PlaybookFactory(tenant=tenant, holdout_percent=50)
    fired_at = timezone.now() - timedelta(days=20)
    for i, customer in enumerate(customers):
        held = i % 2 == 0
        status = Outreach.Status.REJECTED if i % 4 == 1 else Outreach.Status.EXPIRED
        OutreachFactory(
            tenant=tenant,
            customer=customer,
            playbook=playbook,
            triggered_at=fired_at,
            holdout=held,
            status=Outreach.Status.HELD_OUT if held else status,
        )
        if i < (6 if held else 16):  # more contacts among those assigned, but no clear effect
            Signal.objects.create(
                tenant=tenant, customer=customer, key=f"c{i}", name="support.contact", timestamp=fired_at
            )
    rollups_rebuild(tenant_id=tenant.pk)
    outcomes_sweep(tenant=tenant)
    result = effectiveness(tenant=tenant, playbook=playbook, window_days=14)
    assert result["treated"]["customers"] == 20 and result["holdout"]["customers"] == 20
    assert result["reached"] == {"customers": 0, "share": 0.0}
    assert result["effect_on_reached"] is None
    text = (
        client_for(tenant, Membership.Role.VIEWER).get(f"/t/acme/playbooks/{playbook.pk}/").content.decode()
    )
    assert "Not estimated: 0 of 20 assigned (0%) received the message" in text
    assert "whose message was delivered" not in text and "customers reached" not in text
    assert "No clear effect yet" in text
    assert result["relative_reduction"] < 0 and result["ci95"][0] < 0 < result["ci95"][1]
    assert "more contacts among" not in text and "fewer contacts among" not in text


@pytest.mark.parametrize("count", [effectiveness, engagement_counts])
def test_exactly_one_source_is_required(tenant, count):
    # engagement_counts used to fail on None.pk given neither, and to count the playbook given both.
    playbook, campaign = PlaybookFactory(tenant=tenant), CampaignFactory(tenant=tenant)
    for source in ({}, {"playbook": playbook, "campaign": campaign}):
        with pytest.raises(ValueError, match="exactly one"):
            count(tenant=tenant, **source)
    engagement = engagement_counts(tenant=tenant, campaign=campaign)
    assert engagement == dict.fromkeys(["sent", "seen", "clicked", "dismissed", "helpful", "not_helpful"], 0)
