"""The model's history features: their values, and nothing recorded after T reaches them as of T."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from psycopg.types.json import Jsonb

from accounts.models import Tenant
from proactive.features.history import parse_history
from proactive.ingest import signals_copy_insert
from proactive.models import Customer
from proactive.scoring.baselines import BGNBD, bgnbd_inputs
from proactive.scoring.features import model_feature_names, model_matrices, model_rows
from tests.proactive.scoring_world import START

pytestmark = pytest.mark.django_db

T = START + timedelta(days=30, hours=12)


def _signals(tenant, rows):
    signals_copy_insert(
        tenant_id=tenant.pk,
        rows=[(key, who, name, ts, Jsonb({})) for key, who, name, ts in rows],
        received_at=T,
    )


@pytest.fixture
def shop(tenant):
    tenant.prediction_target = Tenant.Target.INACTIVITY
    tenant.activity_signals = ["purchase"]
    tenant.save()
    Customer.objects.bulk_create(
        [Customer(tenant=tenant, external_id=e, signed_up_at=START) for e in ("a", "b", "quiet")]
    )
    _signals(
        tenant,
        [
            ("a1", "a", "purchase", T - timedelta(days=10)),
            ("a2", "a", "purchase", T - timedelta(days=7, hours=3)),
            ("a3", "a", "purchase", T - timedelta(days=7, hours=1)),  # same day: one active day
            ("a4", "a", "purchase", T - timedelta(days=1)),
            ("a5", "a", "purchase", T - timedelta(hours=2)),  # T's own day: the grammar counts it
            ("a6", "a", "page.viewed", T - timedelta(days=20)),
            ("b1", "b", "page.viewed", T - timedelta(days=3)),
        ],
    )
    return tenant


def _row(tenant, names, external_id):
    pk = Customer.objects.for_tenant(tenant).get(external_id=external_id).pk
    return dict(
        zip(
            names,
            model_rows(tenant=tenant, as_of=T, names=names, customer_ids=np.array([pk]))[0],
            strict=True,
        )
    )


def test_history_features_read_whole_days_before_t(shop):
    names = model_feature_names(shop, T)
    assert {
        "active_days(purchase)",
        "gap_mean(purchase)",
        "recency_ratio(purchase)",
        "count(purchase, 365)",
    } <= set(names)
    a = _row(shop, names, "a")
    assert a["active_days(purchase)"] == 3  # days -10, -7, -1 (the day of T itself is not whole yet)
    assert a["active_days(purchase, 30)"] == 3
    assert a["days_since_first(purchase)"] == 10
    assert a["days_since_active(purchase)"] == 1
    assert a["gap_mean(purchase)"] == pytest.approx(4.5)  # gaps of 3 and 6 days
    assert a["gap_std(purchase)"] == pytest.approx(1.5)
    assert a["recency_ratio(purchase)"] == pytest.approx(1 / 4.5)
    assert a["per_day(purchase)"] == pytest.approx(3 / 11)
    assert a["active_days(*)"] == 4  # the page view 20 days before
    assert a["count(purchase, 3650)"] == 5  # raw rows up to T, same day included
    b = _row(shop, names, "b")
    assert b["active_days(purchase)"] == 0 and np.isnan(b["gap_mean(purchase)"])
    assert np.isnan(b["days_since_first(purchase)"]) and b["per_day(purchase)"] == 0
    assert b["days_since_first(*)"] == 3


def test_nothing_recorded_after_t_changes_any_feature_as_of_t(shop):
    names = model_feature_names(shop, T)
    assert all(parse_history(n) is not None or "(" in n or n == "days_since_signup" for n in names)
    lo, hi = sorted(Customer.objects.for_tenant(shop).values_list("pk", flat=True))[::2]
    ids, (before,) = model_matrices(tenant=shop, as_ofs=[T], names=names, lo=lo, hi=hi)
    _signals(
        shop,
        [
            ("late1", "a", "purchase", T + timedelta(seconds=1)),
            ("late2", "b", "purchase", T + timedelta(hours=1)),  # later the same UTC day
            ("late3", "quiet", "purchase", T + timedelta(days=2)),
            ("late4", "quiet", "page.viewed", T + timedelta(days=2)),
        ],
    )
    again_ids, (after,) = model_matrices(tenant=shop, as_ofs=[T], names=names, lo=lo, hi=hi)
    np.testing.assert_array_equal(ids, again_ids)
    np.testing.assert_array_equal(before, after)
    # Several as-of times in one pass give what one at a time gives.
    _, (at_t, later) = model_matrices(
        tenant=shop, as_ofs=[T, T + timedelta(days=3)], names=names, lo=lo, hi=hi
    )
    np.testing.assert_array_equal(at_t, before)
    assert not np.array_equal(later, before)


def test_bgnbd_recovers_its_parameters_and_ranks_the_lapsed():
    """Simulated BG/NBD customers: the fit finds parameters near the true ones, and P(no purchase
    in the next 28 days) is higher for customers whose recency lags their frequency."""
    rng = np.random.default_rng(4)
    n, horizon_t = 4000, 200.0
    lam = rng.gamma(2.0, 1 / 40.0, n)  # r = 2, alpha = 40
    p = rng.beta(1.0, 4.0, n)  # a = 1, b = 4
    freq, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > horizon_t:
                break
            freq[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    big_t = np.full(n, horizon_t)
    fitted = BGNBD.fit(freq, t_x, big_t)
    assert fitted.r == pytest.approx(2.0, rel=0.35) and fitted.alpha == pytest.approx(40, rel=0.35)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(0.2, abs=0.07)
    recent = fitted.p_none(np.array([5.0]), np.array([195.0]), np.array([200.0]), 28.0)
    lapsed = fitted.p_none(np.array([5.0]), np.array([60.0]), np.array([200.0]), 28.0)
    assert lapsed[0] > recent[0] + 0.2
    names = [
        "active_days(s)",
        "days_since_first(s)",
        "days_since_active(s)",
        "days_since_signup",
        "days_since_first(*)",
    ]
    x = np.array([[6.0, 199.0, 4.0, 250.0, 199.0], [0.0, np.nan, np.nan, 30.0, np.nan]])
    f, tx, tt = bgnbd_inputs(names, x, "s")
    assert f.tolist() == [5.0, 0.0] and tx.tolist() == [195.0, 0.0] and tt.tolist() == [200.0, 31.0]
