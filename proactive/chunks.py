"""Customers in chunks: set-based work (features, scoring, firing, outcome sweeps) runs over
contiguous id ranges of a tenant's customers, so that memory stays flat at any tenant size
and scheduled runs can fan chunks out to workers."""

from __future__ import annotations

from django.db import connection

from accounts.models import Tenant
from proactive.models import Customer

# Customers per chunk: 20,000 rows of features fit comfortably in a worker's memory and keep
# a chunk's statements to a few seconds at 10M signals.
CHUNK_SIZE = 20_000


def customer_id_ranges(tenant: Tenant, chunk_size: int = CHUNK_SIZE) -> list[tuple[int, int]]:
    """Inclusive (first id, last id) ranges of at most `chunk_size` of the tenant's customers."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT min(id), max(id) FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / %s AS k "  # noqa: S608
            f"FROM {Customer._meta.db_table} WHERE tenant_id = %s) x GROUP BY k ORDER BY k",
            [chunk_size, tenant.pk],
        )
        return [(lo, hi) for lo, hi in cur.fetchall()]
