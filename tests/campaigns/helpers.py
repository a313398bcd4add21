"""Small builders for campaigns tests: customers with signals, rollups rebuilt like ingestion does."""

from __future__ import annotations

from datetime import datetime, timedelta

from proactive.ingest import rollups_rebuild
from proactive.models import Customer, Signal

T0 = datetime.fromisoformat("2026-03-02T12:00:00+00:00")


def make_customers(
    tenant, n: int, *, signed_up_days_ago: int = 10, prefix: str = "c", **attrs
) -> list[Customer]:
    rows = [
        Customer(
            tenant=tenant,
            external_id=f"{prefix}{i:06d}",
            name=f"Customer {i}",
            signed_up_at=T0 - timedelta(days=signed_up_days_ago),
            attributes=dict(attrs),
        )
        for i in range(n)
    ]
    return Customer.objects.bulk_create(rows)


def add_signals(tenant, customers, name: str, at: datetime, per_customer: int = 1) -> None:
    rows = [
        Signal(tenant=tenant, customer=c, key=f"{name}:{c.pk}:{at.isoformat()}:{k}", name=name, timestamp=at)
        for c in customers
        for k in range(per_customer)
    ]
    Signal.objects.bulk_create(rows)
    rollups_rebuild(tenant_id=tenant.pk)
