"""The demo world's outage: the sync integration of one component's customers starts failing a
few hours before the seed time, so monitoring has a suspected incident to show.

Stored through the ingestion fast path with fixed keys (a re-seed stores nothing twice); the
detector then runs once as of the seed time, as the beat would have every five minutes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from django.utils import timezone

from accounts.models import Tenant
from campaigns.monitoring import monitor_run
from proactive.ingest import signals_copy_insert
from proactive.models import Customer

SIGNAL = "error.sync_failed"
SEGMENT = ("integration", "salesforce")
HOURS = 3.5
SHARE_PER_HOUR = 0.15


def plant_outage(
    *, tenant: Tenant, now: datetime | None = None, seed: int = 1, log: Callable[[str], None] = print
) -> dict | None:
    now = (now or timezone.now()).astimezone(UTC).replace(microsecond=0)
    start = now - timedelta(hours=HOURS)
    key, value = SEGMENT
    ids = list(
        Customer.objects.for_tenant(tenant)
        .filter(**{f"attributes__{key}": value}, signed_up_at__lte=start)
        .order_by("external_id")
        .values_list("external_id", flat=True)
    )
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str, str, str]] = []
    for hour in range(int(np.ceil(HOURS))):
        hour_start = start + timedelta(hours=hour)
        for ext in np.array(ids)[rng.random(len(ids)) < SHARE_PER_HOUR]:
            for _ in range(int(rng.integers(2, 6))):
                at = hour_start + timedelta(seconds=int(rng.integers(0, 3600)))
                if at <= now:
                    rows.append((f"demo-outage:{seed}:{len(rows)}", str(ext), SIGNAL, at.isoformat(), "{}"))
    stored = signals_copy_insert(tenant_id=tenant.pk, rows=rows, received_at=now)
    result = monitor_run(tenant=tenant, as_of=now, trigger="seed")
    log(
        f"  outage planted: {stored} {SIGNAL} signals from {key}={value} customers since {start:%H:%M} UTC; "
        f"monitoring suspects {len((result or {}).get('suspected', []))} incident(s)"
    )
    return result
