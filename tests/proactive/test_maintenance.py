"""Planner statistics: tables that changed a lot since their last ANALYZE are analyzed by the beat
and before each pipeline run, also where autovacuum is off (as on the development machine)."""

from __future__ import annotations

import pytest
from django.db import connection

from pipeline.management.commands.setup_periodic_tasks import SCHEDULE
from proactive.maintenance import analyze_stale_tables, stale_tables
from proactive.models import Customer
from tests.factories import TenantFactory


def flush_stats() -> None:
    with connection.cursor() as cur:  # table counters reach pg_stat_user_tables after a flush
        cur.execute("SELECT pg_stat_force_next_flush()")
        cur.execute("SELECT 1")


@pytest.mark.django_db(transaction=True)
def test_a_bulk_load_makes_a_table_stale_until_it_is_analyzed():
    tenant = TenantFactory()
    with connection.cursor() as cur:
        cur.execute("ANALYZE proactive_customer")
    flush_stats()
    assert "proactive_customer" not in stale_tables()
    Customer.objects.bulk_create([Customer(tenant=tenant, external_id=f"c{i}") for i in range(2_000)])
    flush_stats()
    assert "proactive_customer" in stale_tables()
    assert "proactive_customer" in analyze_stale_tables()
    flush_stats()
    assert "proactive_customer" not in stale_tables()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'proactive_customer'"
        )  # the planner now knows the rows
        assert cur.fetchone()[0] >= 2_000


def test_the_beat_runs_it_every_minute():
    assert SCHEDULE["proactive:analyze_stale_tables"] == ("proactive.analyze_stale_tables", 60)
