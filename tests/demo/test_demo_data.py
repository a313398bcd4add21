from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from django.core.management import call_command
from django.db import connection

from demo.data import generate_demo_data
from proactive.features.compute import compute_features
from proactive.features.metrics import parse_metric
from proactive.models import Customer, Signal, SignalDaily, SignalValueDaily

END = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_it_is_deterministic_idempotent_and_consistent_with_rollups(tenant):
    first = generate_demo_data(tenant=tenant, customers=150, days=40, seed=3, end=END)
    assert first.signals_stored == first.signals_generated > 1000
    again = generate_demo_data(tenant=tenant, customers=150, days=40, seed=3, end=END)
    assert (again.signals_generated, again.signals_stored) == (first.signals_generated, 0)
    assert Customer.objects.for_tenant(tenant).count() == 150
    assert Signal.objects.for_tenant(tenant).count() == first.signals_generated
    assert (
        sum(SignalDaily.objects.for_tenant(tenant).values_list("count", flat=True)) == first.signals_generated
    )
    names = set(Signal.objects.for_tenant(tenant).values_list("name", flat=True).distinct())
    assert {"session.started", "error.sync_failed", "onboarding.step_completed", "support.contact"} <= names
    plans = {c.attributes["plan"] for c in Customer.objects.for_tenant(tenant)}
    assert plans == {"free", "pro", "enterprise"}
    # Sessions carry their minutes, a property the tenant declares; the value rollup sums them once.
    tenant.refresh_from_db()
    assert tenant.numeric_properties == ["session.started.minutes"]
    sessions = Signal.objects.for_tenant(tenant).filter(name="session.started")
    minutes = [s.properties["minutes"] for s in sessions]
    assert len(minutes) == sessions.count() > 100 and all(m >= 0 for m in minutes)
    rolled = SignalValueDaily.objects.for_tenant(tenant).filter(name="session.started", key="minutes")
    assert sum(rolled.values_list("count", flat=True)) == len(minutes)
    assert abs(sum(rolled.values_list("total", flat=True)) - sum(minutes)) < 1e-6 * sum(minutes)


def test_contacts_follow_error_bursts_and_stalls(tenant):
    generate_demo_data(tenant=tenant, customers=1500, days=60, seed=5, end=END)
    as_of = END - timedelta(days=14)
    metrics = [parse_metric("count(error.*, 3)"), parse_metric("trend(session.*)")]
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=metrics)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT customer_id FROM proactive_signal WHERE tenant_id = %s "
            "AND name = 'support.contact' AND timestamp > %s AND timestamp <= %s",
            [tenant.pk, as_of, as_of + timedelta(days=7)],
        )
        contacted = {r[0] for r in cur.fetchall()}
    label = np.isin(frame.customer_ids, list(contacted))
    errors = frame.column("count(error.*, 3)") > 0
    assert label[errors].mean() > 2 * label[~errors].mean()


def test_the_command_prints_a_summary(tenant, capsys):
    call_command(
        "generate_demo_data",
        "--tenant",
        tenant.slug,
        "--customers",
        "20",
        "--days",
        "10",
        "--end",
        END.isoformat(),
    )
    assert '"customers": 20' in capsys.readouterr().out
