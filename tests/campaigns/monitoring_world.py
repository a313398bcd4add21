"""Generated error signals for the incident detector: weekly seasonality, growth, drifting and
noisy error regimes, and optionally one planted outage in one segment. Deterministic per seed;
stored through the ingestion fast path (so the hourly rollups are maintained as in production)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection

from accounts.models import Tenant
from proactive.ingest import customers_upsert, signals_copy_insert

PLANS = np.array(["free", "pro", "enterprise"])
REGIONS = np.array(["eu", "us", "apac", "latam"])
INTEGRATIONS = np.array(["salesforce", "hubspot", "zendesk"])
# name -> customers hitting it per hour at the start, on a weekday afternoon
SIGNALS = {"error.sync_failed": 12.0, "error.api_timeout": 6.0, "error.export_failed": 0.8}


@dataclass
class Outage:
    signal: str
    key: str
    value: str
    start: datetime
    hours: float
    share: float  # of the segment's active customers hit per hour


@dataclass
class World:
    start: datetime
    end: datetime
    external_ids: np.ndarray
    attributes: dict[str, np.ndarray]
    planted: dict[str, datetime] = field(default_factory=dict)  # external_id -> first outage hit

    def planted_between(self, lo: datetime, hi: datetime) -> set[str]:
        return {e for e, t in self.planted.items() if lo <= t <= hi}


def _season(hours: np.ndarray) -> np.ndarray:
    """Relative activity by hour of day and weekday (UTC), working hours peaking at 14:00."""
    hod = hours % 24
    dow = (hours // 24 + 3) % 7  # hour 0 is a Thursday 00:00 UTC (1970-01-01)
    daily = 0.15 + np.exp(-((hod - 14) ** 2) / (2 * 3.5**2))
    weekly = np.where(dow >= 5, 0.35, 1.0)
    return daily * weekly


def build_world(
    *,
    tenant: Tenant,
    seed: int,
    customers: int = 3000,
    weeks: int = 12,
    end: datetime,
    outage: Outage | None = None,
    scale: float = 1.0,
) -> World:
    rng = np.random.default_rng(seed)
    end = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(weeks=weeks)
    n = customers
    ext = np.array([f"c{seed}-{i:06d}" for i in range(n)])
    attrs = {
        "plan": PLANS[rng.choice(3, n, p=[0.5, 0.35, 0.15])],
        "region": REGIONS[rng.choice(4, n, p=[0.35, 0.35, 0.2, 0.1])],
        "integration": INTEGRATIONS[rng.choice(3, n, p=[0.35, 0.35, 0.3])],
    }
    seats = rng.integers(1, 500, n)
    # Growth: customers join over the period (a third were there from the start).
    joined = np.where(rng.random(n) < 0.5, -1.0, weeks * 168 * np.sqrt(rng.random(n)))
    joined = np.sort(joined)
    propensity = rng.lognormal(0, 0.8, n)
    payload = [
        {
            "external_id": str(ext[i]),
            "name": f"Customer {i}",
            "attributes": {**{k: str(v[i]) for k, v in attrs.items()}, "seats": int(seats[i])},
        }
        for i in range(n)
    ]
    for lo in range(0, n, 10_000):
        customers_upsert(tenant=tenant, records=payload[lo : lo + 10_000], now=end)

    total_hours = weeks * 168
    epoch_h0 = int(start.timestamp()) // 3600
    hours = np.arange(total_hours) + epoch_h0
    season = _season(hours)
    active_share = np.searchsorted(joined, np.arange(total_hours), side="right") / n
    keys, cust, secs, names = [], [], [], []
    for name, rate in SIGNALS.items():
        days = total_hours // 24 + 1
        # Drifting regime (a slow random walk in the log rate), day-to-day noise, and noisier weeks.
        drift = np.cumsum(rng.normal(0, 0.06, days))
        drift -= drift.mean()
        noisy_week = rng.random(weeks + 1) < 0.3
        cv = np.where(noisy_week[np.arange(days) // 7], 0.35, 0.15)
        day_noise = rng.gamma(1 / cv**2, cv**2)
        day = np.arange(total_hours) // 24
        lam = rate * scale * season / season.max() * 1.6 * np.exp(drift[day]) * day_noise[day]
        lam *= active_share / max(active_share[-1], 1e-9)
        counts = rng.poisson(lam)
        for h in np.nonzero(counts)[0]:
            eligible = np.searchsorted(joined, h, side="right")
            if eligible == 0:
                continue
            p = propensity[:eligible] / propensity[:eligible].sum()
            who = np.unique(rng.choice(eligible, counts[h], p=p))
            reps = rng.integers(1, 4, len(who))
            for c, r in zip(who, reps, strict=True):
                for _ in range(r):
                    cust.append(c)
                    secs.append((epoch_h0 + h) * 3600 + int(rng.integers(0, 3600)))
                    names.append(name)
    world = World(start=start, end=end, external_ids=ext, attributes=attrs)
    if outage is not None:
        o_start = int(outage.start.timestamp())
        o_end = o_start + int(outage.hours * 3600)
        in_segment = np.nonzero(attrs[outage.key] == outage.value)[0]
        for hs in range(o_start, o_end, 3600):
            h = hs // 3600 - epoch_h0
            eligible = in_segment[in_segment < np.searchsorted(joined, h, side="right")]
            activity = _season(np.array([hs // 3600]))[0] / _season(np.arange(168)).max()
            hit = eligible[rng.random(len(eligible)) < outage.share * activity]
            for c in hit:
                first = None
                for _ in range(int(rng.integers(2, 6))):
                    t = hs + int(rng.integers(0, min(3600, o_end - hs)))
                    cust.append(c)
                    secs.append(t)
                    names.append(outage.signal)
                    first = t if first is None else min(first, t)
                when = datetime.fromtimestamp(first, UTC)
                prior = world.planted.get(str(ext[c]))
                world.planted[str(ext[c])] = min(prior, when) if prior else when
    order = np.argsort(np.array(secs), kind="stable")
    end_s = int(end.timestamp())
    rows = []
    for k, i in enumerate(order):
        if secs[i] > end_s:
            continue
        ts = datetime.fromtimestamp(secs[i], UTC).isoformat()
        rows.append((f"w{seed}:{k:09d}", str(ext[cust[i]]), names[i], ts, "{}"))
        keys.append(k)
    for lo in range(0, len(rows), 20_000):
        signals_copy_insert(tenant_id=tenant.pk, rows=rows[lo : lo + 20_000], received_at=end)
    # What autovacuum does within a minute of a bulk load in production: without statistics the
    # planner takes these fresh tables for empty and nests loops (a 2-minute incident page).
    with connection.cursor() as cur:
        cur.execute("ANALYZE proactive_customer, proactive_signal, proactive_signalhourly")
    return world
