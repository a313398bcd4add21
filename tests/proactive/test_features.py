from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from proactive.features.compute import compute_features, default_metrics, features_query, range_matrices
from proactive.features.metrics import Kind, parse_metric
from proactive.ingest import customers_upsert, signals_ingest
from proactive.models import Customer
from proactive.rollups import rollups_fold
from proactive.sql import merge_params

NAMES = ["session.started", "error.sync_failed", "error.auth", "feature.export", "support.contact", "login"]
METRICS = [
    parse_metric(m)
    for m in [
        "count(*, 1)",
        "count(error.*, 3)",
        "count(session.started, 7)",
        "count(error.sync_failed, 30)",
        "count(feature.*, 14)",
        "count(login, 45)",
        "days_since_last(error.*)",
        "days_since_last(support.contact)",
        "trend(session.*)",
        "trend(*)",
        "days_since_signup",
        "attribute.seats",
        "attribute.plan",
    ]
]
BASE = datetime(2025, 3, 1, tzinfo=UTC)


def _matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def reference(metric, as_of, signed_up_at, signals):
    """Straightforward per-customer computation over raw (name, timestamp) pairs."""
    seen = [(n, t) for n, t in signals if t <= as_of]

    def count(pattern, lo, hi):
        return sum(1 for n, t in seen if _matches(pattern, n) and lo < t <= hi)

    if metric.kind is Kind.COUNT:
        return float(count(metric.pattern, as_of - timedelta(days=metric.days), as_of))
    if metric.kind is Kind.TREND:
        c7 = count(metric.pattern, as_of - timedelta(days=7), as_of)
        c28 = count(metric.pattern, as_of - timedelta(days=35), as_of - timedelta(days=7))
        return (c7 + 1) / (c28 / 4 + 1)
    if metric.kind is Kind.DAYS_SINCE_LAST:
        times = [t for n, t in seen if _matches(metric.pattern, n)]
        return (as_of - max(times)).total_seconds() / 86400 if times else np.nan
    if metric.kind is Kind.DAYS_SINCE_SIGNUP:
        return (as_of - signed_up_at).total_seconds() / 86400
    raise AssertionError(metric)


@pytest.fixture
def world(tenant):
    rng = random.Random(7)
    customers_upsert(
        tenant=tenant,
        records=[
            {
                "external_id": f"c{i}",
                "signed_up_at": (BASE - timedelta(days=60 + i)).isoformat(),
                "attributes": {"plan": rng.choice(["free", "pro"]), "seats": i} if i != 3 else {},
            }
            for i in range(8)
        ],
        now=BASE,
    )
    signals = []
    for i in range(8):
        for k in range(rng.randint(0, 120)):
            ts = BASE - timedelta(seconds=rng.randint(0, 50 * 86400))
            signals.append(
                {
                    "id": f"s{i}-{k}",
                    "customer": f"c{i}",
                    "name": rng.choice(NAMES),
                    "timestamp": ts.isoformat(),
                }
            )
    # signals exactly on window edges and at midnight
    for j, ts in enumerate(
        [BASE - timedelta(days=3), BASE - timedelta(days=7), BASE, BASE - timedelta(days=1)]
    ):
        signals.append(
            {"id": f"edge-{j}", "customer": "c1", "name": "error.auth", "timestamp": ts.isoformat()}
        )
    result = signals_ingest(tenant=tenant, records=signals, now=BASE)
    assert result.rejected == 0 and result.duplicates == 0
    by_customer = {}
    for s in signals:
        by_customer.setdefault(s["customer"], []).append((s["name"], datetime.fromisoformat(s["timestamp"])))
    return by_customer


@pytest.mark.parametrize(
    "as_of",
    [
        BASE,
        BASE - timedelta(days=1),
        BASE - timedelta(days=2, hours=5, minutes=17, seconds=3),
        BASE - timedelta(days=9, hours=23, microseconds=1),
        BASE - timedelta(days=20, hours=11),
    ],
)
def test_it_matches_a_straightforward_reference(tenant, world, as_of):
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=METRICS, chunk_size=3)
    customers = {c.pk: c for c in Customer.objects.for_tenant(tenant)}
    assert list(frame.customer_ids) == sorted(customers)
    for row, cid in enumerate(frame.customer_ids):
        c = customers[cid]
        for metric in METRICS:
            if metric.kind is Kind.ATTRIBUTE:
                continue
            expected = reference(metric, as_of, c.signed_up_at, world.get(c.external_id, []))
            got = frame.values[row, frame.names.index(str(metric))]
            np.testing.assert_allclose(
                got, expected, rtol=1e-9, atol=1e-9, err_msg=f"{c.external_id} {metric}"
            )


def test_attributes_are_numeric_or_one_hot(tenant, world):
    frame = compute_features(tenant=tenant, as_of=BASE, metrics=METRICS)
    assert "attribute.seats" in frame.names
    assert {"attribute.plan=free", "attribute.plan=pro"} <= set(frame.names)
    c3 = Customer.objects.for_tenant(tenant).get(external_id="c3")
    c5 = Customer.objects.for_tenant(tenant).get(external_id="c5")
    row = frame.row(c5.pk)
    assert row["attribute.seats"] == 5.0
    assert row["attribute.plan=free"] + row["attribute.plan=pro"] == 1.0
    assert frame.row(c3.pk)["attribute.plan=pro"] is None


def test_a_signal_after_as_of_changes_nothing(tenant, world):
    as_of = BASE - timedelta(days=4, hours=3)
    before = compute_features(tenant=tenant, as_of=as_of, metrics=METRICS)
    late = [
        {
            "id": f"late-{k}",
            "customer": "c2",
            "name": n,
            "timestamp": (as_of + timedelta(seconds=1 + k)).isoformat(),
        }
        for k, n in enumerate(NAMES)
    ]
    late.append(
        {
            "id": "late-day",
            "customer": "c2",
            "name": "error.auth",
            "timestamp": (as_of + timedelta(hours=2)).isoformat(),
        }
    )
    assert signals_ingest(tenant=tenant, records=late, now=BASE).accepted == len(late)
    after = compute_features(tenant=tenant, as_of=as_of, metrics=METRICS)
    np.testing.assert_array_equal(before.values, after.values)
    later = compute_features(tenant=tenant, as_of=as_of + timedelta(hours=3), metrics=METRICS)
    assert not np.array_equal(np.nan_to_num(before.values), np.nan_to_num(later.values))


def test_features_query_is_usable_as_a_subquery(tenant, world):
    metric = parse_metric("count(error.*, 30)")
    sql, params, aliases = features_query(
        tenant_id=tenant.pk, as_of=BASE, metrics=[metric, parse_metric("attribute.plan")]
    )
    assert aliases == ["m0", "m1"]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM ({sql}) f WHERE f.m0 >= %(min)s AND f.m1 = to_jsonb(%(plan)s::text)",  # noqa: S608
            merge_params(params, {"min": 1, "plan": "pro"}),
        )
        n = cur.fetchone()[0]
    frame = compute_features(tenant=tenant, as_of=BASE, metrics=[metric, parse_metric("attribute.plan")])
    expected = int(
        ((frame.column("count(error.*, 30)") >= 1) & (frame.column("attribute.plan=pro") == 1)).sum()
    )
    assert n == expected


def test_it_restricts_to_given_customers(tenant, world):
    ids = list(Customer.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True))[2:4]
    part = compute_features(tenant=tenant, as_of=BASE, metrics=METRICS, customer_ids=ids)
    full = compute_features(tenant=tenant, as_of=BASE, metrics=METRICS)
    assert list(part.customer_ids) == ids
    np.testing.assert_array_equal(part.values, full.values[2:4])


def test_default_metrics_follow_what_the_tenant_sends(tenant, world):
    names = [str(m) for m in default_metrics(tenant, BASE)]
    for family in ("session.*", "error.*", "feature.*", "support.*"):
        assert f"count({family}, 7)" in names
        assert f"days_since_last({family})" in names
        assert f"trend({family})" in names
    assert "count(login, 30)" in names
    assert "count(error.sync_failed, 7)" in names
    assert "count(session.started, 7)" not in names  # alone in its family: same as session.*
    assert "days_since_signup" in names and "attribute.plan" in names and "attribute.seats" in names
    # names first seen after as_of are not part of the feature set then
    early = [str(m) for m in default_metrics(tenant, BASE - timedelta(days=400))]
    assert not any("error" in n for n in early)


def test_default_features_run_end_to_end(tenant, world):
    frame = compute_features(tenant=tenant, as_of=BASE)
    assert frame.values.shape == (8, len(frame.names))
    assert frame.values.dtype == np.float64


@pytest.mark.parametrize("as_of", [BASE, BASE - timedelta(days=2, hours=5, minutes=17, seconds=3)])
def test_the_sql_features_agree_with_the_frame(tenant, world, as_of):
    """Conditions read `features_query` (SQL); the model reads `compute_features` (numpy pivot)."""
    numeric = [m for m in METRICS if m.kind is not Kind.ATTRIBUTE]
    sql, params, aliases = features_query(tenant_id=tenant.pk, as_of=as_of, metrics=numeric)
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM ({sql}) f ORDER BY customer_id", params)  # noqa: S608
        rows = cur.fetchall()
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=numeric)
    assert [r[0] for r in rows] == list(frame.customer_ids)
    got = np.array([r[1:] for r in rows], dtype=np.float64)
    np.testing.assert_allclose(frame.values, got, rtol=1e-9, atol=1e-9)


def test_many_patterns_spill_into_a_second_bit_word(tenant, world):
    names = [f"x{i}.n" for i in range(70)]
    signals_ingest(
        tenant=tenant,
        records=[
            {
                "id": f"many-{i}",
                "customer": "c0",
                "name": n,
                "timestamp": (BASE - timedelta(hours=i)).isoformat(),
            }
            for i, n in enumerate(names)
        ],
        now=BASE,
    )
    metrics = [parse_metric(f"count(x{i}.*, 7)") for i in range(70)]
    frame = compute_features(tenant=tenant, as_of=BASE, metrics=metrics)
    c0 = Customer.objects.for_tenant(tenant).get(external_id="c0").pk
    assert all(v == 1.0 for v in frame.row(c0).values())
    sql, params, _ = features_query(tenant_id=tenant.pk, as_of=BASE, metrics=metrics, customer_ids=[c0])
    with connection.cursor() as cur:
        cur.execute(sql, params)
        assert cur.fetchone()[1:] == (1.0,) * 70


def test_several_cutoffs_in_one_pass_match_one_at_a_time(tenant, world):
    numeric = [m for m in METRICS if m.kind is not Kind.ATTRIBUTE]
    as_ofs = [
        BASE - timedelta(days=20, hours=11),
        BASE - timedelta(days=2, hours=5),
        BASE - timedelta(days=9),
        BASE,
    ]
    ids = sorted(Customer.objects.for_tenant(tenant).values_list("pk", flat=True))
    got_ids, matrices = range_matrices(tenant=tenant, as_ofs=as_ofs, metrics=numeric, lo=ids[1], hi=ids[-2])
    assert list(got_ids) == ids[1:-1]
    for as_of, matrix in zip(as_ofs, matrices, strict=True):
        one = compute_features(tenant=tenant, as_of=as_of, metrics=numeric, customer_ids=ids[1:-1])
        np.testing.assert_allclose(matrix, one.values, rtol=1e-9, atol=1e-9, err_msg=str(as_of))


def test_metrics_with_different_windows_get_their_own_parameters(tenant):
    """count(P, 7) and count(P, 30) in one call: each window binds its own edges (by name, not by
    position in a list), so each counts exactly its own window, in SQL and in the frame."""
    as_of = BASE + timedelta(hours=15)  # mid-day: both windows have partial first days
    customers_upsert(tenant=tenant, records=[{"external_id": "w0"}, {"external_id": "w1"}], now=BASE)
    ago = {
        "w0": [
            ("ping", timedelta(minutes=30)),
            ("ping", timedelta(days=2)),
            ("ping", timedelta(days=6, hours=23)),
        ]
        + [("ping", timedelta(days=7, hours=1)), ("ping", timedelta(days=12))]
        + [
            ("ping", timedelta(days=29, hours=23)),
            ("ping", timedelta(days=30, hours=1)),
            ("ping", timedelta(days=45)),
        ],
        "w1": [("pong.a", timedelta(days=1)), ("pong.b", timedelta(days=5)), ("pong.a", timedelta(days=13))],
    }
    records = [
        {"id": f"{c}-{k}", "customer": c, "name": name, "timestamp": (as_of - back).isoformat()}
        for c, rows in ago.items()
        for k, (name, back) in enumerate(rows)
    ]
    assert signals_ingest(tenant=tenant, records=records, now=as_of).accepted == len(records)
    texts = ["count(ping, 7)", "count(ping, 30)", "count(ping, 1)", "count(pong.*, 3)", "count(pong.*, 14)"]
    texts.append(f"count_since(ping, {(as_of - timedelta(days=10)).isoformat()})")
    metrics = [parse_metric(t) for t in texts]
    expected = {"w0": [3.0, 6.0, 1.0, 0.0, 0.0, 4.0], "w1": [0.0, 0.0, 0.0, 1.0, 3.0, 0.0]}
    ids = {c.external_id: c.pk for c in Customer.objects.for_tenant(tenant)}

    sql, params, _ = features_query(tenant_id=tenant.pk, as_of=as_of, metrics=metrics)
    assert params["w7_start"] == as_of - timedelta(days=7)
    assert params["w30_start"] == as_of - timedelta(days=30)
    for fold in (False, True):  # pending deltas, then the folded daily rollups
        if fold:
            rollups_fold(tenant_id=tenant.pk)
        with connection.cursor() as cur:
            cur.execute(f"SELECT * FROM ({sql}) f ORDER BY customer_id", params)  # noqa: S608
            rows = {r[0]: list(r[1:]) for r in cur.fetchall()}
        frame = compute_features(tenant=tenant, as_of=as_of, metrics=metrics[:5])
        got, matrices = range_matrices(
            tenant=tenant, as_ofs=[as_of], metrics=metrics[:5], lo=min(ids.values()), hi=max(ids.values())
        )
        for c, want in expected.items():
            assert rows[ids[c]] == want, c
            assert list(frame.row(ids[c]).values()) == want[:5], c
            assert matrices[0][list(got).index(ids[c])].tolist() == want[:5], c
