"""Rollups folded off the request path: exactly once, and features exact whatever is pending."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from proactive.features.compute import compute_features, default_metrics, features_query
from proactive.features.metrics import parse_metric
from proactive.ingest import rollups_rebuild, signals_ingest
from proactive.models import SignalDaily, SignalName, SignalRollupDelta
from proactive.rollups import rollups_fold, rollups_fold_task
from tests.factories import TenantFactory

BASE = datetime(2025, 6, 10, 15, 30, tzinfo=UTC)
NAMES = ["session.started", "feature.export", "error.sync_failed", "support.contact"]


def batches(seed: int, n_batches: int = 4, per_batch: int = 150) -> list[list[dict]]:
    rng = random.Random(seed)
    out = []
    for b in range(n_batches):
        out.append(
            [
                {
                    "id": f"s{seed}-{b}-{i}",
                    "customer": f"c{rng.randrange(12)}",
                    "name": rng.choice(NAMES),
                    "timestamp": (BASE - timedelta(seconds=rng.randrange(40 * 86400))).isoformat(),
                }
                for i in range(per_batch)
            ]
        )
    return out


def rollup_state(tenant) -> tuple[dict, dict]:
    daily = {
        (r.customer_id, r.name, r.day): (r.count, r.last_at) for r in SignalDaily.objects.for_tenant(tenant)
    }
    names = {n.name: (n.total, n.first_seen, n.last_seen) for n in SignalName.objects.for_tenant(tenant)}
    return daily, names


def frames(tenant, metrics):
    out = []
    for as_of in (BASE, BASE - timedelta(days=3, hours=7), BASE - timedelta(days=17, minutes=1)):
        f = compute_features(tenant=tenant, as_of=as_of, metrics=metrics)
        out.append((list(f.customer_ids), f.values.copy()))
    return out


def test_features_are_the_same_with_deltas_pending_partly_folded_and_folded(tenant):
    metrics = [
        parse_metric(m)
        for m in (
            "count(*, 7)",
            "count(error.*, 30)",
            "count(support.contact, 14)",
            "days_since_last(feature.*)",
        )
    ]
    parts = batches(1)
    for part in parts[:2]:
        signals_ingest(tenant=tenant, records=part, now=BASE)
    rollups_fold(tenant_id=tenant.pk)
    for part in parts[2:]:
        signals_ingest(tenant=tenant, records=part, now=BASE)
    assert SignalRollupDelta.objects.for_tenant(tenant).count() == 2
    half = frames(tenant, metrics)
    half_names = default_metrics(tenant, BASE)
    rollups_fold(tenant_id=tenant.pk)
    assert SignalRollupDelta.objects.for_tenant(tenant).count() == 0
    folded = frames(tenant, metrics)
    rollups_rebuild(tenant_id=tenant.pk)
    rebuilt = frames(tenant, metrics)
    for (ids_a, a), (ids_b, b), (ids_c, c) in zip(half, folded, rebuilt, strict=True):
        assert ids_a == ids_b == ids_c
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert default_metrics(tenant, BASE) == half_names
    # The playbooks' SQL (features_query) sees pending deltas too.
    more = batches(2, n_batches=1)[0]
    signals_ingest(tenant=tenant, records=more, now=BASE)
    sql, params, _ = features_query(tenant_id=tenant.pk, as_of=BASE, metrics=metrics[:1])
    with connection.cursor() as cur:
        cur.execute(f"SELECT sum(m0) FROM ({sql}) f", params)  # noqa: S608
        pending_total = cur.fetchone()[0]
    rollups_fold(tenant_id=tenant.pk)
    with connection.cursor() as cur:
        cur.execute(f"SELECT sum(m0) FROM ({sql}) f", params)  # noqa: S608
        assert cur.fetchone()[0] == pending_total


def test_folding_counts_every_delta_once_and_matches_a_rebuild(tenant):
    other = TenantFactory()
    for part in batches(3):
        signals_ingest(tenant=tenant, records=part, now=BASE)
        signals_ingest(tenant=tenant, records=part, now=BASE)  # resends add no delta rows
    for part in batches(4, n_batches=2):
        signals_ingest(tenant=other, records=part, now=BASE)
    assert SignalRollupDelta.objects.for_tenant(tenant).count() == 4
    assert rollups_fold(tenant_id=tenant.pk, limit=3) == 4
    assert SignalRollupDelta.objects.for_tenant(other).count() == 2  # another tenant's wait
    assert rollups_fold_task() == 2  # the beat's task folds every tenant
    assert rollups_fold_task() == 0  # a redelivered task finds nothing left
    folded = rollup_state(tenant)
    assert sum(c for c, _ in folded[0].values()) == 600
    rollups_rebuild(tenant_id=tenant.pk)
    assert rollup_state(tenant) == folded


@pytest.mark.django_db(transaction=True)
def test_concurrent_folds_split_the_work_without_double_counting():
    tenant = TenantFactory()
    for part in batches(5, n_batches=12, per_batch=80):
        signals_ingest(tenant=tenant, records=part, now=BASE)
    counts, errors = [], []
    barrier = threading.Barrier(3)

    def fold():
        try:
            barrier.wait()
            counts.append(rollups_fold(tenant_id=tenant.pk, limit=2))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(counts) == 12
    folded = rollup_state(tenant)
    assert sum(c for c, _ in folded[0].values()) == 960
    rollups_rebuild(tenant_id=tenant.pk)
    assert rollup_state(tenant) == folded
