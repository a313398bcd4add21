"""Deterministic demo behaviour for a tenant: customers, sessions, feature use, onboarding that
stalls, error bursts, declining activity, and support contacts that follow them.

Contacts are drawn from a daily hazard that rises after an error burst (days -3..-1), during a
flaky-integration period (when bursts cluster), while onboarding is stalled in the first
month, while activity is declining and while a new customer explores many features, scaled by
account traits (plan, seats, API version, integration) and a per-customer habit, so a model
trained on the features of `proactive.features` has something real to learn. Everything is
vectorised over (customer, day) with numpy and stored through the ingestion fast path
(COPY -> staging -> INSERT ... ON CONFLICT + rollups); the keys are a function of the seed,
so re-running stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from proactive.features.values import values_ensure
from proactive.ingest import customers_upsert, signal_tables_analyze, signals_copy_insert
from proactive.rollups import rollups_fold

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Linus",
    "Radia",
    "Donald",
    "Frances",
]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Perlman", "Knuth"]
PLANS = np.array(["free", "pro", "enterprise"])
INTEGRATIONS = np.array(["none", "salesforce", "hubspot"])
FEATURES = ["feature.report_viewed", "feature.export", "feature.dashboard_shared", "feature.api_call"]
ONBOARDING_STEPS = 5
SESSION_MINUTES = "session.started.minutes"  # the numeric property the demo tenant declares
COPY_CHUNK = 250_000


@dataclass(frozen=True)
class DemoSummary:
    customers: int
    signals_generated: int
    signals_stored: int
    contacts: int
    start: datetime
    end: datetime


def _lagged_any(mask: np.ndarray, lags: range) -> np.ndarray:
    out = np.zeros_like(mask)
    for lag in lags:
        out[:, lag:] |= mask[:, : mask.shape[1] - lag]
    return out


def generate_demo_data(
    *,
    tenant: Tenant,
    customers: int = 2000,
    days: int = 120,
    seed: int = 1,
    end: datetime | None = None,
    external_prefix: str = "cust-",
) -> DemoSummary:
    """Generate and store `customers` x `days` of behaviour ending at `end` (default: now)."""
    if SESSION_MINUTES not in (tenant.numeric_properties or []):
        tenant.numeric_properties = [*(tenant.numeric_properties or []), SESSION_MINUTES]
        tenant.save(update_fields=["numeric_properties"])
    rng = np.random.default_rng(seed)
    end = (end or timezone.now()).astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    n, d = customers, days
    day_idx = np.arange(d)

    signup = np.where(rng.random(n) < 0.4, rng.uniform(0, d, n), rng.uniform(-365, 0, n))
    plan = PLANS[rng.choice(3, n, p=[0.45, 0.4, 0.15])]
    api_version = np.where(rng.random(n) < 0.4, "v1", "v2")
    integration = INTEGRATIONS[rng.choice(3, n, p=[0.4, 0.3, 0.3])]
    seats = np.maximum(1, rng.lognormal(1.5, 0.9, n)).astype(int)

    tenure = day_idx[None, :] - signup[:, None]  # days since signup at each day
    active = tenure >= 0
    plan_mult = np.select([plan == "free", plan == "pro"], [0.7, 1.0], 1.4)
    base = rng.lognormal(np.log(0.45), 0.6, n) * plan_mult
    weekday = np.where(((start + timedelta(days=1)).weekday() + day_idx) % 7 >= 5, 0.5, 1.0)
    declining = rng.random(n) < 0.3
    decline_start = rng.uniform(0, d, n)
    since_decline = day_idx[None, :] - decline_start[:, None]
    decline_mult = np.where(
        declining[:, None] & (since_decline > 0), np.exp(-np.clip(since_decline, 0, None) / 10), 1
    )
    rate = base[:, None] * weekday[None, :] * decline_mult * active
    sessions = rng.poisson(rate)
    feature_use = rng.poisson(0.45 * sessions)

    burst_p = (
        0.004 * np.where(api_version == "v1", 2.0, 1.0) * np.where(integration == "salesforce", 2.0, 1.0)
    )
    # Some customers go through a flaky-integration period of 15-35 days: bursts cluster there.
    flaky_start = np.where(rng.random(n) < 0.4, rng.uniform(-20, d, n), np.inf)
    since_flaky = day_idx[None, :] - flaky_start[:, None]
    flaky = (since_flaky >= 0) & (since_flaky < rng.uniform(15, 35, n)[:, None])
    burst = (rng.random((n, d)) < burst_p[:, None] + 0.25 * flaky) & active
    errors = np.where(burst, rng.poisson(4, (n, d)) + 1, 0) + rng.poisson(0.01, (n, d)) * active
    timeouts = rng.poisson(0.015, (n, d)) * active

    stalled = rng.random(n) < 0.35
    steps = np.where(stalled, rng.integers(0, 2, n), ONBOARDING_STEPS)
    step_day = np.floor(signup[:, None] + np.arange(ONBOARDING_STEPS)[None, :] * 1.3 + rng.random((n, 5)))
    has_step = (np.arange(ONBOARDING_STEPS)[None, :] < steps[:, None]) & (step_day >= 0) & (step_day < d)

    after_burst = _lagged_any(burst, range(1, 4))
    stuck = (stalled[:, None]) & (tenure >= 3) & (tenure <= 30)
    fading = declining[:, None] & (since_decline >= 5) & (since_decline <= 40)
    # Account traits matter as in a real product: bigger accounts have more people who can get
    # stuck, the older API version and the Salesforce sync raise questions, and some customers
    # simply reach for support more than others (a stable trait their past contacts reveal).
    # Heavy feature use without onboarding is a second behavioural route to a question.
    account = (
        0.004 * (plan == "enterprise")
        + 0.002 * np.log1p(seats)
        + 0.003 * (api_version == "v1")
        + 0.002 * (integration == "salesforce")
    )
    habit = rng.lognormal(-0.125, 0.5, n)
    exploring = (feature_use >= 3) & (tenure < 45)
    hazard = habit[:, None] * (
        0.001
        + account[:, None]
        + 0.05 * after_burst
        + 0.03 * (flaky & active)
        + 0.05 * stuck
        + 0.04 * fading
        + 0.01 * exploring
    )
    contacts = (rng.random((n, d)) < hazard) & active

    ext_ids = np.array([f"{external_prefix}{i:06d}" for i in range(n)])
    customers_payload = [
        {
            "external_id": str(ext_ids[i]),
            "name": f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]} ({i})",
            "email": f"{ext_ids[i]}@example.com",
            "signed_up_at": (start + timedelta(days=float(signup[i]))).isoformat(),
            "attributes": {
                "plan": str(plan[i]),
                "api_version": str(api_version[i]),
                "integration": str(integration[i]),
                "seats": int(seats[i]),
            },
        }
        for i in range(n)
    ]
    # Sent as the history window opens (not at `end`): attribute history is point-in-time, so
    # models see the traits at every cut-off of the window.
    for lo in range(0, n, 10_000):
        customers_upsert(tenant=tenant, records=customers_payload[lo : lo + 10_000], now=start)

    start_s = int(start.timestamp())
    end_s = int(end.timestamp())
    # (customer, unix seconds, name index, session minutes or NaN)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    names: list[str] = []

    def emit(
        counts: np.ndarray,
        name: str,
        hours: tuple[float, float] = (0, 24),
        mean_minutes: np.ndarray | None = None,
    ) -> None:
        cust, day = np.nonzero(counts)
        reps = counts[cust, day]
        cust, day = np.repeat(cust, reps), np.repeat(day, reps)
        secs = start_s + day * 86400 + (rng.uniform(hours[0], hours[1], len(day)) * 3600).astype(np.int64)
        names.append(name)
        minutes = np.full(len(cust), np.nan)
        if mean_minutes is not None:
            minutes = np.round(minutes_rng.gamma(2.0, mean_minutes[cust, day] / 2.0), 1)
        parts.append((cust, secs, np.full(len(cust), len(names) - 1), minutes))

    # Each session carries its length in minutes (`session.started.minutes`, a numeric property
    # the demo tenant declares): shorter while onboarding is stalled and as activity declines, so
    # it shows trouble before the session counts do. Drawn from its own generator, so the rest of
    # the world is the same with or without it.
    minutes_rng = np.random.default_rng(seed + 10_000)
    session_minutes = (
        24.0 * np.where(stuck, 0.5, 1.0) * (0.35 + 0.65 * decline_mult) * np.sqrt(plan_mult)[:, None]
    )
    emit(sessions, "session.started", (7, 20), session_minutes)
    feature_kind = rng.choice(len(FEATURES), size=int(feature_use.sum()), p=[0.4, 0.25, 0.15, 0.2])
    idx = np.nonzero(feature_use.ravel())[0]
    owners = np.repeat(idx, feature_use.ravel()[idx])
    for k, fname in enumerate(FEATURES):
        counts = np.bincount(owners[feature_kind == k], minlength=n * d).reshape(n, d)
        emit(counts, fname, (8, 20))
    emit(errors, "error.sync_failed")
    emit(timeouts, "error.api_timeout")
    for k in range(ONBOARDING_STEPS):
        counts = np.zeros((n, d), dtype=np.int64)
        stepped = np.nonzero(has_step[:, k])[0]
        counts[stepped, step_day[stepped, k].astype(int)] = 1
        emit(counts, "onboarding.step_completed", (9, 18))
    emit(contacts.astype(np.int64), "support.contact", (9, 19))

    cust = np.concatenate([p[0] for p in parts])
    secs = np.concatenate([p[1] for p in parts])
    name_idx = np.concatenate([p[2] for p in parts])
    minutes = np.concatenate([p[3] for p in parts])
    keep = secs <= end_s
    # Time order, as live traffic arrives: the BRIN index on timestamp stays selective.
    order = np.lexsort((cust[keep], secs[keep]))
    cust, secs, name_idx = cust[keep][order], secs[keep][order], name_idx[keep][order]
    minutes = minutes[keep][order]
    props = np.where(
        np.isnan(minutes), "{}", np.char.add(np.char.add('{"minutes": ', minutes.astype(str)), "}")
    )
    total = len(cust)
    ts = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s", timezone="UTC")
    name_arr = np.array(names)[name_idx]
    key_prefix = f"demo:{seed}:{n}:{d}:"
    stored = 0
    for lo in range(0, total, COPY_CHUNK):
        hi = min(lo + COPY_CHUNK, total)
        rows = zip(
            (f"{key_prefix}{k:010d}" for k in range(lo, hi)),  # key order = time order
            ext_ids[cust[lo:hi]].tolist(),
            name_arr[lo:hi].tolist(),
            ts[lo:hi].tolist(),
            props[lo:hi].tolist(),
            strict=True,
        )
        stored += signals_copy_insert(tenant_id=tenant.pk, rows=rows, received_at=end)
    rollups_fold(tenant_id=tenant.pk)  # what the worker would do next
    values_ensure(tenant)  # records that the value rollup covers the declared property
    with connection.cursor() as cur:
        signal_tables_analyze(cur)  # a bulk load: the pipeline runs right after it
    return DemoSummary(
        customers=n,
        signals_generated=total,
        signals_stored=stored,
        contacts=int((name_arr == "support.contact").sum()),
        start=start,
        end=end,
    )
