"""Insights on the demo world: planted precursors are found, shuffled contacts give nothing, and the
later cut-offs' rates are point-in-time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from campaigns.conditions import parse_condition
from campaigns.playbooks import matching_sql
from demo.data import generate_demo_data
from proactive.ingest import rollups_rebuild, signals_copy_insert
from proactive.insights.discovery import discover, insight_metrics
from proactive.insights.stats import Clusters, bh_qvalues, evidence
from proactive.insights.words import insight_sentence, pattern_kind
from proactive.models import Customer
from proactive.scoring.labels import customer_first_seen
from proactive.scoring.registry import model_train_reusable
from proactive.scoring.training import Reusable

pytestmark = pytest.mark.django_db

END = datetime(2025, 6, 1, tzinfo=UTC)
CUSTOMERS = 3000


def _kinds(found) -> list[str]:
    return [pattern_kind(f.condition) for f in found.results]


def test_the_planted_precursors_are_among_the_top_insights(tenant):
    generate_demo_data(tenant=tenant, customers=CUSTOMERS, days=120, seed=11, end=END)

    found = discover(tenant=tenant, as_of=END)

    assert found.ok, found.reason
    top = _kinds(found)[:8]
    # Declining activity is a weaker precursor in this world: it needs ~10,000 customers to clear
    # the correction over every candidate (see docs/benchmarks.md), so it is not asserted here.
    assert {"errors", "onboarding"} <= set(top), [f.condition for f in found.results]
    assert all(f.q_value <= 0.05 and f.evidence.ci95[0] > 1 for f in found.results)
    assert found.stats["tried"] > 1000  # every candidate tried counts in the correction
    lows = [f.evidence.ci95[0] for f in found.results]
    assert lows == sorted(lows, reverse=True)
    assert found.stats["snapshots"] == "computed"

    # The pipeline hands the same run's training snapshots to discovery: the same insights.
    names = [str(m) for m in insight_metrics(tenant, END)]
    plain, partial = model_train_reusable(tenant=tenant, as_of=END)
    assert partial is not None
    some = discover(tenant=tenant, as_of=END, reuse=partial)  # the model's columns, the rest computed
    assert some.stats["snapshots"].startswith("reused,") and some.stats["snapshots"].endswith(
        "columns computed"
    )
    riding, reusable = model_train_reusable(tenant=tenant, as_of=END, extra_names=names)
    assert riding.feature_names == plain.feature_names  # the extra columns are not the model's
    assert riding.metrics["auc"] == plain.metrics["auc"] and riding.metrics["brier"] == plain.metrics["brier"]
    assert reusable is not None
    reused = discover(tenant=tenant, as_of=END, reuse=reusable)
    assert reused.stats["snapshots"] == "reused", reused.stats
    for other in (some, reused):
        assert [(f.condition, f.evidence, f.q_value) for f in other.results] == [
            (f.condition, f.evidence, f.q_value) for f in found.results
        ]
    stale = Reusable(reusable.target, reusable.horizon_days + 7, END, reusable.snapshots)
    assert discover(tenant=tenant, as_of=END, reuse=stale).stats["snapshots"] == "computed"


def test_contacts_shuffled_across_customers_give_no_insight(tenant):
    generate_demo_data(tenant=tenant, customers=CUSTOMERS, days=120, seed=11, end=END)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM proactive_signal WHERE tenant_id = %s AND name = 'support.contact' ORDER BY id",
            [tenant.pk],
        )
        contact_ids = [r[0] for r in cur.fetchall()]
        customers = list(Customer.objects.for_tenant(tenant).values_list("id", flat=True))
        owners = np.random.default_rng(5).choice(customers, len(contact_ids))
        cur.execute(
            "UPDATE proactive_signal s SET customer_id = u.owner FROM unnest(%s::bigint[], %s::bigint[]) "
            "AS u(id, owner) WHERE s.tenant_id = %s AND s.id = u.id",
            [contact_ids, [int(o) for o in owners], tenant.pk],
        )
    rollups_rebuild(tenant_id=tenant.pk)

    found = discover(tenant=tenant, as_of=END)

    assert found.ok, found.reason
    assert found.stats["validated"] > 0  # candidates were screened and measured ...
    assert found.results == []  # ... and none held up on the later cut-offs


def test_validation_rates_use_only_signals_inside_each_cutoffs_window(tenant):
    generate_demo_data(tenant=tenant, customers=1500, days=110, seed=4, end=END)
    before = discover(tenant=tenant, as_of=END)
    assert before.ok and before.results, before.reason
    last_cutoff = datetime.fromisoformat(before.stats["validation_cutoffs"][-1])

    # Every customer gets an error burst after the last cut-off (inside the label window).
    # Features as of the cut-offs must not see it: the measured rows stay exactly the same.
    ids = list(Customer.objects.for_tenant(tenant).values_list("external_id", flat=True))
    burst = [
        (f"late-{i}-{k}", ext, "error.sync_failed", last_cutoff + timedelta(hours=1 + k), "{}")
        for i, ext in enumerate(ids)
        for k in range(5)
    ]
    signals_copy_insert(tenant_id=tenant.pk, rows=burst, received_at=END)
    after = discover(tenant=tenant, as_of=END)

    by_condition = {str(f.condition): f for f in after.results}
    for f in before.results:
        if str(f.condition) in by_condition:
            assert by_condition[str(f.condition)].backtest == f.backtest

    # Each validation count is what the playbook's own SQL matches as of that cut-off, among
    # the customers who existed then.
    first_ids, first_seen = customer_first_seen(tenant=tenant)
    for f in before.results[:3]:
        for b in f.backtest:
            cutoff = datetime.fromisoformat(b["as_of"])
            sql, params = matching_sql(tenant=tenant, as_of=cutoff, condition=parse_condition(f.condition))
            with connection.cursor() as cur:
                cur.execute(sql, params)
                matched = {r[0] for r in cur.fetchall()}
            existing = set(first_ids[first_seen <= cutoff.timestamp()].tolist())
            assert len(matched & existing) == b["matched"], f.condition


def test_lift_interval_is_wider_when_rows_repeat_the_same_customers():
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.1).astype(float)
    match = rng.random(4000) < 0.2
    y[match] = (rng.random(int(match.sum())) < 0.3).astype(float)
    independent = evidence(Clusters.of(np.arange(4000), y), match, min_rows=1, min_reached=1)
    # The same rows, but in groups of four identical copies of one customer.
    repeated_ids = np.repeat(np.arange(1000), 4)
    y4, m4 = np.repeat(y[:1000], 4), np.repeat(match[:1000], 4)
    clustered = evidence(Clusters.of(repeated_ids, y4), m4, min_rows=1, min_reached=1)
    naive = evidence(Clusters.of(np.arange(4000), y4), m4, min_rows=1, min_reached=1)
    assert independent.ci95[0] < independent.lift < independent.ci95[1]
    width = np.log(clustered.ci95[1] / clustered.ci95[0])
    assert width > 1.8 * np.log(naive.ci95[1] / naive.ci95[0])
    assert clustered.p_value > naive.p_value


def test_bh_counts_every_candidate_tried():
    q = bh_qvalues(np.array([0.001, 0.01, 0.04]), tried=3)
    assert q.tolist() == pytest.approx([0.003, 0.015, 0.04])
    assert bh_qvalues(np.array([0.001]), tried=1000)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("target", "condition", "expected"),
    [
        (
            "contact",
            {"metric": "count(error.sync_failed, 7)", "op": "gte", "value": 3},
            "Customers with 3 or more `error.sync_failed` in 7 days contact support within 14 days "
            "4.1x as often (3.2x-5.0x): 23% vs 5.6%. 312 customers match today.",
        ),
        (
            "inactivity",
            {"metric": "trend(session.*)", "op": "lte", "value": 0.4},
            "Customers whose `session.*` in the last 7 days fell to 40% or less of their usual week go "
            "quiet (no activity) within 14 days 4.1x as often (3.2x-5.0x): 23% vs 5.6%. 312 customers "
            "match today.",
        ),
    ],
)
def test_an_insight_reads_as_a_sentence_for_its_target(target, condition, expected):
    text = insight_sentence(
        condition=condition,
        target=target,
        horizon_days=14,
        rate=0.23,
        base_rate=0.056,
        lift=4.1,
        ci95=(3.2, 5.0),
        customers_now=312,
    )
    assert text == expected
