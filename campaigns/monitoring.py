"""Incidents detected from the tenant's own error signals.

For every monitored signal name, and within every segment (one value of a `segment_by`
attribute), the detector counts customers hitting the signal per UTC hour from `SignalHourly`
and compares the last hours with what the tenant's own history predicts for them.

Model, per signal (all customers): a Poisson regression on the last `HISTORY_DAYS` of hourly
counts, log mu = intercept + growth * weeks + day-of-week + hour-of-day (in the tenant's time
zone; ridge-shrunk so sparse signals fall back to a flat rate), refitted once without the hours
it cannot explain (past incidents must not raise the baseline). A segment expects its history
share of the signal. Over-dispersion (days with more errors than others) is a negative-binomial
dispersion estimated from the history's residuals, separately for each test window, so that
"noisy but normal" is not a spike. The level is recalibrated on the day before the tested
window, within bounds, for slow drift the trend misses.

Test, as of T: for each series and each window of `WINDOW_HOURS` ending at T, the upper tail
probability of the observed count under the negative binomial. A spike needs a Bonferroni-
corrected p below `ALPHA` over every (series, window) tried in the run, and a practical size
(`MIN_EXCESS` customers above expectation, `MIN_RATIO` times it). The series with the smallest
p names the segment: an outage in one segment is much less likely under that segment's small
baseline than diluted in the whole signal, and a signal-wide outage is the other way round.

Sub-hour counts use each (customer, hour) row's first hit, so 10-minute bins add up exactly to
the hourly customer counts; the spike's start is the maximum-likelihood change point on them.
Point in time: only hits with timestamp <= T are counted (`first_at <= T`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from scipy import stats

from accounts.models import Tenant, User, default_monitoring
from accounts.services import audit_record
from campaigns.conditions import parse_condition
from campaigns.firing import fire
from campaigns.incidents import _incident_source
from campaigns.models import Incident
from campaigns.rules import action_validate
from campaigns.webhook_events import incident_event_emit
from proactive.ingest import signal_hourly_rebuild
from proactive.models import PipelineRun, SignalHourlyCoverage
from proactive.rollups import rollups_fold
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params

log = logging.getLogger(__name__)

HISTORY_DAYS = 28
HISTORY_CACHE_SECONDS = 26 * 3600  # the sliding history (see History); refreshed daily
HISTORY_REFRESH_HOURS = 20  # the fan-out asks for a full reread when the last one is this old
SETTLE_HOURS = 24  # the last hours of history reread at each slide (signals that arrive late)
RECENT_HOURS = 12
BIN_MINUTES = 10
BINS_PER_HOUR = 60 // BIN_MINUTES
WINDOW_HOURS = (1, 3)
ALPHA = 1e-4
MIN_EXCESS = 5
MIN_RATIO = 2.0
MAX_SEGMENT_VALUES = 20
QUIET_HOURS = 2
LEVEL_BOUNDS = (0.5, 2.0)
LEVEL_PSEUDO = 30.0
RIDGE = 2.0
SEGMENT_KEYS_SECONDS = 26 * 3600  # rediscovered by history_refresh
SERIES_HOURS_KEPT = 72


@dataclass
class Series:
    signal: str
    segment: tuple[str, Any] | None
    bins: np.ndarray  # first-hit counts per BIN_MINUTES bin of the recent window
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def segment_dict(self) -> dict[str, Any] | None:
        return {self.segment[0]: self.segment[1]} if self.segment else None


@dataclass
class Spike:
    series: Series
    window: int
    observed: int
    expected: float
    log_p: float


# ---- settings ------------------------------------------------------------------------------------


def monitoring_settings(tenant: Tenant) -> dict[str, Any]:
    return {**default_monitoring(), **(tenant.monitoring or {})}


def _match_sql(column: str, patterns: list[str]) -> tuple[str, dict[str, Any]]:
    """The monitored patterns over `column`; parameters `monitored_names`, `monitored_prefixes`."""
    return patterns_sql(patterns, column, "monitored")


def segment_keys(tenant: Tenant, settings: dict[str, Any], *, refresh: bool = False) -> list[str]:
    """`segment_by`, or every attribute with at most MAX_SEGMENT_VALUES distinct values (a scan
    of all customers: cached, and rediscovered by the daily `history_refresh`)."""
    if settings["segment_by"] is not None:
        return list(settings["segment_by"])
    key = f"monitoring:{connection.settings_dict['NAME']}:{tenant.pk}:segment_keys"
    keys = None if refresh else cache.get(key)
    if keys is None:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT a.key FROM proactive_customer c, jsonb_each(c.attributes) a "
                "WHERE c.tenant_id = %s AND jsonb_typeof(a.value) IN ('string', 'number', 'boolean') "
                "GROUP BY a.key HAVING count(DISTINCT a.value) <= %s ORDER BY a.key LIMIT 50",
                [tenant.pk, MAX_SEGMENT_VALUES],
            )
            keys = [r[0] for r in cur.fetchall()]
        cache.set(key, keys, SEGMENT_KEYS_SECONDS)
    return keys


def _ensure_coverage(tenant: Tenant, patterns: list[str], as_of: datetime) -> None:
    """Ingestion keeps hourly rollups for the current patterns; after a change, rebuild them."""
    coverage = SignalHourlyCoverage.objects.for_tenant(tenant).first()
    if coverage is not None and sorted(coverage.patterns) == sorted(patterns):
        return
    signal_hourly_rebuild(
        tenant_id=tenant.pk, patterns=patterns, since=as_of - timedelta(days=HISTORY_DAYS + 7)
    )


# ---- data ----------------------------------------------------------------------------------------


@dataclass
class History:
    """Hourly customer counts of the `HISTORY_DAYS` before `end` (an hour boundary): per signal
    (`counts[hour, name]`) and per (signal, segment key, value) (`shares[hour, combo]`).

    Kept in the cache and slid forward hour by hour: a run in a new hour reads only the hours that
    entered the window plus the last `SETTLE_HOURS` (late signals), not 28 days. `built_for` is the
    hour of the last full read; `history_refresh` rereads everything once a day, off the run's path,
    so backfilled signals older than a day and new attribute values are seen within a day."""

    end: datetime
    built_for: datetime
    keys: list[str]
    names: list[str]
    counts: np.ndarray
    combos: list[tuple[str, str, Any]]
    shares: np.ndarray

    def totals(self, keys: list[str]) -> tuple[dict[str, np.ndarray], dict[tuple[str, str, Any], int]]:
        history = {
            name: self.counts[:, i].astype(float)
            for i, name in enumerate(self.names)
            if self.counts[:, i].any()
        }
        sums = self.shares.sum(axis=0)
        wanted = set(keys)
        shares = {c: int(sums[i]) for i, c in enumerate(self.combos) if c[1] in wanted and sums[i] > 0}
        return history, shares


def _read_hours(
    cur: Any,
    tenant_id: int,
    match: str,
    match_params: dict[str, Any],
    keys: list[str],
    start: datetime,
    end: datetime,
) -> tuple[list[tuple[str, int, int]], list[tuple[tuple[str, str, Any], int, int]]]:
    """(name, hour index from `start`, customers) and ((name, key, value), hour index, customers)
    for the hours in [start, end), through the (tenant, hour) index."""
    window = merge_params({"tenant_id": tenant_id, "start": start, "end": end}, match_params)
    cur.execute(
        "SELECT h.name, (extract(epoch FROM h.hour - %(start)s) / 3600)::int, count(*) "  # noqa: S608
        "FROM proactive_signalhourly h WHERE h.tenant_id = %(tenant_id)s "
        f"AND h.hour >= %(start)s AND h.hour < %(end)s AND {match} GROUP BY 1, 2",
        window,
    )
    counts = [(name, idx, n) for name, idx, n in cur.fetchall()]
    shares: list[tuple[tuple[str, str, Any], int, int]] = []
    if keys:
        cur.execute(
            "SELECT h.name, k.key, k.value, (extract(epoch FROM h.hour - %(start)s) / 3600)::int, count(*) "  # noqa: S608
            "FROM proactive_signalhourly h "
            "JOIN proactive_customer c ON c.id = h.customer_id AND c.tenant_id = %(tenant_id)s "
            "CROSS JOIN LATERAL (SELECT key, value FROM jsonb_each(c.attributes) "
            "WHERE key = ANY(%(keys)s) AND jsonb_typeof(value) IN ('string', 'number', 'boolean')) k "
            "WHERE h.tenant_id = %(tenant_id)s AND h.hour >= %(start)s "
            f"AND h.hour < %(end)s AND {match} GROUP BY 1, 2, 3, 4",
            merge_params(window, {"keys": keys}),
        )
        shares = [((name, key, _decoded(value)), idx, n) for name, key, value, idx, n in cur.fetchall()]
    return counts, shares


def _history_key(tenant: Tenant, patterns: list[str]) -> str:
    digest = hashlib.sha1(json.dumps(sorted(patterns)).encode()).hexdigest()  # noqa: S324 - a cache key
    return f"monitor-history:{connection.settings_dict['NAME']}:{tenant.pk}:{digest}"


def _history(
    tenant: Tenant, patterns: list[str], keys: list[str], recent_start: datetime, *, full: bool = False
) -> History:
    """The history ending at `recent_start`: the cached one as is, slid forward, or read in full
    (none cached, a new segment key, going back in time, or more than a window behind)."""
    n_hours = HISTORY_DAYS * 24
    cache_key = _history_key(tenant, patterns)
    state: History | None = None if full else cache.get(cache_key)
    if state is not None and state.end == recent_start and set(keys) <= set(state.keys):
        return state
    match, match_params = _match_sql("h.name", patterns)
    if state is not None and not (
        set(keys) <= set(state.keys)
        and state.end < recent_start
        and (recent_start - state.end) <= timedelta(hours=n_hours - SETTLE_HOURS)
    ):
        state = None  # a new segment key, going back in time, or more than a window behind
    history_start = recent_start - timedelta(days=HISTORY_DAYS)
    if state is not None:
        shift = int((recent_start - state.end).total_seconds() // 3600)
        reread = shift + SETTLE_HOURS
        names, combos = list(state.names), list(state.combos)
        counts = np.zeros((n_hours, len(names)), dtype=np.int32)
        shares = np.zeros((n_hours, len(combos)), dtype=np.int32)
        counts[: n_hours - reread] = state.counts[shift : n_hours - SETTLE_HOURS]
        shares[: n_hours - reread] = state.shares[shift : n_hours - SETTLE_HOURS]
        read_from, offset, built_for, keys_kept = (
            recent_start - timedelta(hours=reread),
            n_hours - reread,
            state.built_for,
            state.keys,
        )
    else:
        names, combos = [], []
        counts = np.zeros((n_hours, 0), dtype=np.int32)
        shares = np.zeros((n_hours, 0), dtype=np.int32)
        read_from, offset, built_for, keys_kept = history_start, 0, recent_start, sorted(keys)
    with connection.cursor() as cur:
        new_counts, new_shares = _read_hours(
            cur, tenant.pk, match, match_params, keys_kept, read_from, recent_start
        )
    name_index = {n: i for i, n in enumerate(names)}
    for name, _idx, _n in new_counts:
        if name not in name_index:
            name_index[name] = len(names)
            names.append(name)
    combo_index = {c: i for i, c in enumerate(combos)}
    for combo, _idx, _n in new_shares:
        if combo not in combo_index:
            combo_index[combo] = len(combos)
            combos.append(combo)
    counts = np.pad(counts, ((0, 0), (0, len(names) - counts.shape[1])))
    shares = np.pad(shares, ((0, 0), (0, len(combos) - shares.shape[1])))
    for name, idx, n in new_counts:
        counts[offset + idx, name_index[name]] = n
    for combo, idx, n in new_shares:
        shares[offset + idx, combo_index[combo]] = n
    state = History(recent_start, built_for, list(keys_kept), names, counts, combos, shares)
    cache.set(cache_key, state, HISTORY_CACHE_SECONDS)
    cache.set(f"{cache_key}:built_for", built_for, HISTORY_CACHE_SECONDS)
    return state


def history_refresh(*, tenant: Tenant, as_of: datetime) -> float:
    """Rediscover the segment keys and reread the whole history (the daily refresh the sliding
    history needs for late signals and new attribute values), off the detection path. Seconds."""
    started = time.perf_counter()
    settings = monitoring_settings(tenant)
    patterns = list(settings["signals"])
    if patterns:
        keys = sorted(set(segment_keys(tenant, settings, refresh=True)) | _active_segment_keys(tenant))
        _history(tenant, patterns, keys, _recent_start(as_of), full=True)
    return time.perf_counter() - started


def history_refresh_due(*, tenant: Tenant, as_of: datetime) -> bool:
    """The cached history was last read in full more than `HISTORY_REFRESH_HOURS` ago (or never)."""
    patterns = list(monitoring_settings(tenant)["signals"])
    if not patterns:
        return False
    built_for: datetime | None = cache.get(f"{_history_key(tenant, patterns)}:built_for")
    return built_for is None or _recent_start(as_of) - built_for >= timedelta(hours=HISTORY_REFRESH_HOURS)


def _recent_start(as_of: datetime) -> datetime:
    hour0 = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour0 - timedelta(hours=RECENT_HOURS - 1)


def _load(
    tenant: Tenant, patterns: list[str], keys: list[str], as_of: datetime, recent_start: datetime
) -> tuple[dict[str, np.ndarray], dict[tuple[str, str, Any], int], dict[tuple, np.ndarray]]:
    """History per signal (hourly customers), history totals per (signal, key, value), and the
    recent window's bins per (signal, key, value) with key None for all customers."""
    match, match_params = _match_sql("h.name", patterns)
    n_bins = RECENT_HOURS * BINS_PER_HOUR
    recent: dict[tuple, np.ndarray] = {}
    history, shares = _history(tenant, patterns, keys, recent_start).totals(keys)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT h.name, k.key, k.value, "  # noqa: S608
            "floor(extract(epoch FROM h.first_at - %(recent_start)s) / %(bin_seconds)s)::int AS bin, "
            "count(*) "
            "FROM proactive_signalhourly h "
            "JOIN proactive_customer c ON c.id = h.customer_id AND c.tenant_id = %(tenant_id)s "
            "CROSS JOIN LATERAL (SELECT NULL::text AS key, NULL::jsonb AS value UNION ALL "
            "  SELECT key, value FROM jsonb_each(c.attributes) WHERE key = ANY(%(keys)s) "
            "  AND jsonb_typeof(value) IN ('string', 'number', 'boolean')) k "
            "WHERE h.tenant_id = %(tenant_id)s AND h.hour >= %(recent_start)s AND h.first_at <= %(as_of)s "
            f"AND {match} GROUP BY 1, 2, 3, 4",
            merge_params(
                {"tenant_id": tenant.pk, "recent_start": recent_start},
                match_params,
                {"keys": keys, "bin_seconds": BIN_MINUTES * 60, "as_of": as_of},
            ),
        )
        for name, key, value, b, n in cur.fetchall():
            if 0 <= b < n_bins:
                recent.setdefault((name, key, _decoded(value)), np.zeros(n_bins))[b] = n
    return history, shares, recent


def _decoded(value: Any) -> Any:
    """Django's cursor hands jsonb back as JSON text."""
    return json.loads(value) if isinstance(value, str) else value


# ---- model ---------------------------------------------------------------------------------------


def _design(hours: list[datetime], origin: datetime, tz: Any) -> np.ndarray:
    """Intercept, growth (weeks since origin), day-of-week (6) and hour-of-day (23) dummies."""
    local = [h.astimezone(tz) for h in hours]
    dow = np.array([t.weekday() for t in local])
    hod = np.array([t.hour for t in local])
    weeks = np.array([(h - origin).total_seconds() / (7 * 86400) for h in hours])
    x = np.zeros((len(hours), 31))
    x[:, 0] = 1.0
    x[:, 1] = weeks
    for d in range(1, 7):
        x[:, 1 + d] = dow == d
    for k in range(1, 24):
        x[:, 7 + k] = hod == k
    return x


def _fit_poisson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ridge-penalised Poisson regression by IRLS (the seasonal dummies shrink towards zero)."""
    penalty = np.full(x.shape[1], RIDGE)
    penalty[:2] = 1e-6
    beta = np.zeros(x.shape[1])
    beta[0] = math.log(max((w * y).sum() / max(w.sum(), 1.0), 1e-3))
    for _ in range(25):
        eta = np.clip(x @ beta, -20, 20)
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        ww = w * mu
        a = x.T @ (x * ww[:, None]) + np.diag(penalty)
        new = np.linalg.solve(a, x.T @ (ww * z))
        if np.max(np.abs(new - beta)) < 1e-6:
            beta = new
            break
        beta = new
    beta[1] = float(np.clip(beta[1], -math.log(2), math.log(2)))  # at most x2 per week of growth
    return beta


def _dispersion(y: np.ndarray, mu: np.ndarray, window: int) -> float:
    """Negative-binomial alpha (var = mu + alpha mu^2) of counts summed over `window` hours."""
    n = len(y) // window * window
    if n == 0:
        return 0.0
    ys = y[-n:].reshape(-1, window).sum(axis=1) if n else y
    ms = mu[-n:].reshape(-1, window).sum(axis=1)
    denom = float((ms**2).sum())
    if denom <= 0:
        return 0.0
    return float(np.clip(((ys - ms) ** 2 - ys).sum() / denom, 0.0, 2.0))


@dataclass
class SignalModel:
    beta: np.ndarray
    alphas: dict[int, float]
    history_total: float
    weights: np.ndarray


def _signal_model(
    y: np.ndarray, hist_hours: list[datetime], origin: datetime, tz: Any
) -> tuple[SignalModel, np.ndarray]:
    x = _design(hist_hours, origin, tz)
    w = np.ones(len(y))
    beta = _fit_poisson(x, y, w)
    mu = np.exp(x @ beta)
    alpha = _dispersion(y, mu, 1)
    # Hours the model cannot explain (earlier incidents) are left out of the refit.
    limit = mu + 4 * np.sqrt(mu * (1 + alpha * mu)) + 2
    w = (y <= limit).astype(float)
    beta = _fit_poisson(x, y, w)
    mu = np.exp(x @ beta)
    inliers = w > 0
    alphas = {k: _dispersion(np.where(inliers, y, mu), mu, k) for k in WINDOW_HOURS}
    return SignalModel(beta, alphas, float((y * w).sum()), w), mu


def _log_sf(observed: float, expected: float, alpha: float) -> float:
    """log P(X >= observed) under a negative binomial with this mean and dispersion."""
    if observed <= 0:
        return 0.0
    if alpha < 1e-6:
        return float(stats.poisson.logsf(observed - 1, expected))
    n = 1.0 / alpha
    return float(stats.nbinom.logsf(observed - 1, n, n / (n + expected)))


# ---- detection -----------------------------------------------------------------------------------


@dataclass
class Detection:
    as_of: datetime
    checked: int
    spikes: list[Spike]
    series: dict[tuple, Series]
    alphas: dict[str, dict[int, float]]
    bin_starts: list[datetime]
    tests: int


def detect(*, tenant: Tenant, as_of: datetime) -> Detection:
    """Every series tested as of `as_of`, and the spike (if any) per signal.

    Pending rollup deltas are folded first (exactly once), so the hourly rollup holds every
    stored signal; otherwise it only reads."""
    rollups_fold(tenant_id=tenant.pk)
    settings = monitoring_settings(tenant)
    patterns = list(settings["signals"])
    as_of = as_of.astimezone(UTC)
    recent_start = _recent_start(as_of)
    n_bins = RECENT_HOURS * BINS_PER_HOUR
    bin_starts = [recent_start + timedelta(minutes=BIN_MINUTES * i) for i in range(n_bins)]
    if not patterns:
        return Detection(as_of, 0, [], {}, {}, bin_starts, 0)
    keys = segment_keys(tenant, settings)
    keys = sorted(set(keys) | _active_segment_keys(tenant))
    history, shares, recent = _load(tenant, patterns, keys, as_of, recent_start)
    origin = recent_start - timedelta(days=HISTORY_DAYS)
    hist_hours = [origin + timedelta(hours=i) for i in range(HISTORY_DAYS * 24)]
    recent_hours = [recent_start + timedelta(hours=i) for i in range(RECENT_HOURS)]
    # The part of each bin up to as_of (the last one is usually partial; later ones are empty).
    frac = np.clip(np.array([(as_of - b).total_seconds() / (BIN_MINUTES * 60) for b in bin_starts]), 0.0, 1.0)
    last = int(np.nonzero(frac > 0)[0][-1]) + 1 if (frac > 0).any() else n_bins
    tz = tenant.tz
    values_per_key: dict[str, int] = defaultdict(int)
    for _name, key, _value in shares:
        values_per_key[key] += 1
    series: dict[tuple, Series] = {}
    alphas: dict[str, dict[int, float]] = {}
    signals = sorted(set(history) | {name for (name, key, _v) in recent if key is None})
    for name in signals:
        y = history.get(name, np.zeros(HISTORY_DAYS * 24))
        model, mu_hist = _signal_model(y, hist_hours, origin, tz)
        alphas[name] = model.alphas
        mu_hours = np.exp(_design(recent_hours, origin, tz) @ model.beta)
        mu_bins = np.repeat(mu_hours / BINS_PER_HOUR, BINS_PER_HOUR) * frac
        bins = recent.get((name, None, None), np.zeros(n_bins))
        # Today's level against the model's, over the day before the longest test window (part
        # of a day's error rate is a day effect the seasonal model cannot know), within bounds.
        cut = max(0, last - max(WINDOW_HOURS) * BINS_PER_HOUR)
        tail = max(0, 24 - cut // BINS_PER_HOUR)
        w = model.weights[len(y) - tail :]
        level = (float((y[len(y) - tail :] * w).sum() + bins[:cut].sum()) + LEVEL_PSEUDO) / (
            float((mu_hist[len(y) - tail :] * w).sum() + mu_bins[:cut].sum()) + LEVEL_PSEUDO
        )
        mu_bins = mu_bins * float(np.clip(level, *LEVEL_BOUNDS))
        total = Series(name, None, bins, mu_bins)
        series[(name, None, None)] = total
        for (sname, key, value), hist_n in shares.items():
            if sname != name:
                continue
            share = (hist_n + 0.5) / (model.history_total + 0.5 * max(values_per_key[key], 1))
            share = min(share, 1.0)
            series[(name, key, value)] = Series(
                name, (key, value), recent.get((name, key, value), np.zeros(n_bins)), mu_bins * share
            )
        # Segment values with no history at all (new) have no baseline share: left untested.
    tests = len(series) * len(WINDOW_HOURS)
    threshold = math.log(ALPHA / max(tests, 1))
    best: dict[str, Spike] = {}
    for s in series.values():
        for window in WINDOW_HOURS:
            lo = max(0, last - window * BINS_PER_HOUR)
            observed = int(s.bins[lo:last].sum())
            expected = float(s.expected[lo:last].sum())
            if observed - expected < MIN_EXCESS or observed < MIN_RATIO * expected:
                continue
            log_p = _log_sf(observed, max(expected, 1e-9), alphas[s.signal][window])
            if log_p > threshold:
                continue
            current = best.get(s.signal)
            if current is None or log_p < current.log_p:
                best[s.signal] = Spike(s, window, observed, expected, log_p)
    return Detection(as_of, len(series), list(best.values()), series, alphas, bin_starts, tests)


def _active_segment_keys(tenant: Tenant) -> set[str]:
    keys: set[str] = set()
    for detection in (
        Incident.objects.for_tenant(tenant)
        .filter(status__in=[Incident.Status.SUSPECTED, Incident.Status.OPEN])
        .exclude(monitored_signal="")
        .values_list("detection", flat=True)
    ):
        keys.update((detection or {}).get("segment") or {})
    return keys


def change_point(s: Series) -> int:
    """The bin where the elevated rate most likely began: argmax over start bins of the Poisson
    log-likelihood ratio of 'elevated from here to now' against the baseline."""
    y = s.bins[::-1].cumsum()[::-1]
    m = np.maximum(s.expected[::-1].cumsum()[::-1], 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where(y > m, y * np.log(np.maximum(y, 1e-9) / m) - (y - m), 0.0)
    return int(np.argmax(llr))


# ---- incidents -----------------------------------------------------------------------------------


def _words(signal: str) -> str:
    return signal.split(".", 1)[-1].replace("_", " ").replace(".", " ")


def _segment_text(segment: dict[str, Any] | None) -> str:
    if not segment:
        return "all customers"
    ((key, value),) = segment.items()
    return f"{key} = {value}"


def affected_condition(signal: str, started_at: datetime, segment: dict[str, Any] | None) -> dict[str, Any]:
    hit = {"metric": f"count_since({signal}, {started_at.isoformat()})", "op": "gte", "value": 1}
    if not segment:
        return hit
    ((key, value),) = segment.items()
    return {"all": [hit, {"metric": f"attribute.{key}", "op": "eq", "value": value}]}


def default_notice(signal: str) -> tuple[dict[str, Any], dict[str, Any]]:
    words = _words(signal)
    notice = action_validate(
        {
            "channel": "in_app",
            "title": f"We know about the “{words}” problem",
            "body": f"Hi {{{{ customer.first_name }}}}, some of your recent actions failed with “{words}” "
            "errors. This is on our side and our team is working on it: there is no need to contact "
            "support. We will let you know as soon as it is fixed.",
            "priority": "high",
        },
        "notice",
    )
    follow_up = action_validate(
        {
            "channel": "in_app",
            "title": f"Fixed: the “{words}” problem",
            "body": f"Hi {{{{ customer.first_name }}}}, the “{words}” errors you ran into are fixed. "
            "Sorry for the trouble.",
        },
        "follow_up",
    )
    return notice, follow_up


def _affected_count(
    tenant: Tenant, signal: str, segment: dict | None, started_at: datetime, as_of: datetime
) -> int:
    seg_sql = ""
    params: dict[str, Any] = {"tenant_id": tenant.pk, "signal": signal, "started": started_at, "as_of": as_of}
    if segment:
        ((key, value),) = segment.items()
        seg_sql = " AND c.attributes -> %(seg_key)s = %(seg_value)s::jsonb"
        params = merge_params(params, {"seg_key": key, "seg_value": _jsonb(value)})
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT h.customer_id) FROM proactive_signalhourly h "  # noqa: S608
            "JOIN proactive_customer c ON c.id = h.customer_id AND c.tenant_id = %(tenant_id)s "
            "WHERE h.tenant_id = %(tenant_id)s AND h.name = %(signal)s "
            "AND h.hour >= date_trunc('hour', %(started)s::timestamptz, 'UTC') "
            f"AND h.last_at >= %(started)s AND h.first_at <= %(as_of)s{seg_sql}",
            params,
        )
        return int(cur.fetchone()[0])


def _jsonb(value: Any) -> str:
    return json.dumps(value)


def _series_points(s: Series, bin_starts: list[datetime], as_of: datetime) -> dict[str, list[float]]:
    points: dict[str, list[float]] = {}
    for h in range(RECENT_HOURS):
        start = bin_starts[h * BINS_PER_HOUR]
        if start > as_of:
            break
        sl = slice(h * BINS_PER_HOUR, (h + 1) * BINS_PER_HOUR)
        points[start.isoformat()] = [float(s.bins[sl].sum()), round(float(s.expected[sl].sum()), 3)]
    return points


def _merged_state(
    state: dict[str, Any], points: dict[str, list[float]], elevated: bool, as_of: datetime
) -> dict:
    hours = {**state.get("hours", {}), **points}
    kept = dict(sorted(hours.items())[-SERIES_HOURS_KEPT:])
    last = state.get("last_elevated_at")
    if elevated:
        last = as_of.isoformat()
    return {"hours": kept, "last_elevated_at": last, "checked_at": as_of.isoformat()}


def _elevated(s: Series, as_of_bin: int, alpha: float) -> bool:
    lo = max(0, as_of_bin - BINS_PER_HOUR)
    observed = float(s.bins[lo:as_of_bin].sum())
    expected = float(s.expected[lo:as_of_bin].sum())
    if observed - expected < MIN_EXCESS / 2 or observed < MIN_RATIO * expected:
        return False
    return _log_sf(observed, max(expected, 1e-9), alpha) < math.log(0.01)


def _since_stats(
    s: Series, bin_starts: list[datetime], started_at: datetime, last: int
) -> tuple[float, float]:
    first = next((i for i, b in enumerate(bin_starts) if b >= started_at), 0)
    hours = max((last - first) / BINS_PER_HOUR, 1 / BINS_PER_HOUR)
    return (
        round(float(s.bins[first:last].sum()) / hours, 2),
        round(float(s.expected[first:last].sum()) / hours, 2),
    )


def incidents_from_detection(*, tenant: Tenant, det: Detection) -> list[Incident]:
    """Create or update one incident per spiking signal; refresh every active detected incident."""
    settings = monitoring_settings(tenant)
    as_of = det.as_of
    frac_last = next((i for i, b in enumerate(det.bin_starts) if b > as_of), len(det.bin_starts))
    last = frac_last
    touched: list[Incident] = []
    spikes = {sp.series.signal: sp for sp in det.spikes}
    active = {
        i.monitored_signal: i
        for i in Incident.objects.for_tenant(tenant)
        .filter(status__in=[Incident.Status.SUSPECTED, Incident.Status.OPEN])
        .exclude(monitored_signal="")
    }
    for signal, incident in active.items():
        d = incident.detection or {}
        seg = d.get("segment")
        key = (signal, *next(iter(seg.items()))) if seg else (signal, None, None)
        s = det.series.get(key)
        if s is None:
            continue
        started_at = datetime.fromisoformat(d["started_at"])
        spike = spikes.pop(signal, None)
        observed, expected = _since_stats(s, det.bin_starts, started_at, last)
        alpha = det.alphas.get(signal, {}).get(1, 0.0)
        detection = {
            **d,
            "customers_affected": _affected_count(tenant, signal, seg, started_at, as_of),
            "observed": observed,
            "expected": expected,
        }
        if spike is not None:
            p = min(1.0, math.exp(spike.log_p) * det.tests)
            detection["p_value"] = min(d.get("p_value", 1.0), p)
        state = _merged_state(
            incident.monitor_state, _series_points(s, det.bin_starts, as_of), _elevated(s, last, alpha), as_of
        )
        Incident.objects.for_tenant(tenant).filter(pk=incident.pk).update(
            detection=detection, monitor_state=state
        )
        if spike is not None:
            incident.detection = detection
            touched.append(incident)
    for signal, spike in spikes.items():
        s = spike.series
        started_at = det.bin_starts[change_point(s)]
        observed, expected = _since_stats(s, det.bin_starts, started_at, last)
        segment = s.segment_dict
        detection = {
            "signal": signal,
            "segment": segment,
            "started_at": started_at.isoformat(),
            "detected_at": as_of.isoformat(),
            "customers_affected": _affected_count(tenant, signal, segment, started_at, as_of),
            "expected": expected,
            "observed": observed,
            "p_value": min(1.0, math.exp(spike.log_p) * det.tests),
        }
        notice, follow_up = default_notice(signal)
        affected = affected_condition(signal, started_at, segment)
        parse_condition(affected, "affected")
        where = f" ({_segment_text(segment)})" if segment else ""
        status = Incident.Status.OPEN if settings["auto_open"] else Incident.Status.SUSPECTED
        state = _merged_state({}, _series_points(s, det.bin_starts, as_of), True, as_of)
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    tenant=tenant,
                    component=f"{signal}{where}"[:100],
                    title=f"Spike in {signal} among {_segment_text(segment)}"[:200],
                    affected=affected,
                    notice=notice,
                    follow_up=follow_up,
                    status=status,
                    overrides_budget=True,
                    opened_at=as_of,
                    detection=detection,
                    monitored_signal=signal,
                    monitor_state=state,
                )
        except IntegrityError:
            # A concurrent run created it first: that one stands (this run's figures are the same).
            continue
        audit_record(
            tenant=tenant,
            actor=None,
            action="incident.suspect" if status == Incident.Status.SUSPECTED else "incident.open",
            target=incident,
            data={"component": incident.component, "source": "monitoring"},
        )
        incident_event_emit(
            incident=incident,
            event_type="incident.suspected" if status == Incident.Status.SUSPECTED else "incident.opened",
        )
        if status == Incident.Status.OPEN:
            fire(tenant=tenant, as_of=as_of, sources=[_incident_source(incident)])
        touched.append(incident)
    return touched


# ---- runs ----------------------------------------------------------------------------------------


def monitor_window_key(as_of: datetime) -> str:
    """Beat ticks within the same 5 minutes share a window: two beat processes run it once."""
    slot = as_of.astimezone(UTC).replace(second=0, microsecond=0)
    return slot.replace(minute=slot.minute - slot.minute % 5).strftime("%Y-%m-%dT%H:%M")


def monitor_run(
    *, tenant: Tenant, as_of: datetime | None = None, trigger: str = "manual", window_key: str | None = None
) -> dict[str, Any] | None:
    """Run the detector as of `as_of`, recorded as a PipelineRun of kind `monitor`.

    Returns {"as_of", "checked", "suspected": [incident ids]} (incidents this run created or
    updated), or None when another run already holds this window."""
    as_of = (as_of or timezone.now()).astimezone(UTC)
    try:
        with transaction.atomic():
            run = PipelineRun.objects.create(
                tenant=tenant,
                kind=PipelineRun.Kind.MONITOR,
                trigger=trigger,
                window_key=window_key or f"manual:{uuid.uuid4().hex}",
                as_of=as_of,
            )
    except IntegrityError:
        return None
    started = time.perf_counter()
    try:
        settings = monitoring_settings(tenant)
        _ensure_coverage(tenant, list(settings["signals"]), as_of)
        det = detect(tenant=tenant, as_of=as_of)
        incidents = incidents_from_detection(tenant=tenant, det=det)
    except Exception as exc:
        PipelineRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
            status=PipelineRun.Status.FAILED, finished_at=timezone.now(), error=repr(exc)[:2000]
        )
        raise
    result = {
        "as_of": as_of.isoformat(),
        "checked": det.checked,
        "suspected": [str(i.pk) for i in incidents],
    }
    seconds = round(time.perf_counter() - started, 4)
    PipelineRun.objects.for_tenant(tenant).filter(pk=run.pk).update(
        status=PipelineRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        steps=[
            {
                "name": "monitor",
                "status": "ok",
                "counts": {"checked": det.checked, "spikes": len(det.spikes)},
                "seconds": seconds,
            }
        ],
        summary=result,
    )
    log.info(
        "monitor tenant=%s as_of=%s checked=%s spikes=%s",
        tenant.pk,
        as_of.isoformat(),
        det.checked,
        len(det.spikes),
    )
    return result


# ---- confirm / dismiss ---------------------------------------------------------------------------


def incident_confirm(
    *, tenant: Tenant, incident: Incident, as_of: datetime | None = None, actor: User | None = None
) -> tuple[bool, dict[str, Any]]:
    """Open a suspected incident and notify its affected customers, exactly as one opened by
    hand (budget override, other nudges held back while open, follow-up on resolution).
    False when it was not suspected (a conditional update: two confirmations notify once)."""
    as_of = as_of or timezone.now()
    changed = (
        Incident.objects.for_tenant(tenant)
        .filter(pk=incident.pk, status=Incident.Status.SUSPECTED)
        .update(status=Incident.Status.OPEN, opened_at=as_of)
    )
    if not changed:
        return False, {"fired": 0}
    audit_record(tenant=tenant, actor=actor, action="incident.confirm", target=incident)
    incident.refresh_from_db()
    incident_event_emit(incident=incident, event_type="incident.opened")
    return True, fire(tenant=tenant, as_of=as_of, sources=[_incident_source(incident)])


def incident_dismiss(
    *, tenant: Tenant, incident: Incident, as_of: datetime | None = None, actor: User | None = None
) -> bool:
    changed = (
        Incident.objects.for_tenant(tenant)
        .filter(pk=incident.pk, status=Incident.Status.SUSPECTED)
        .update(status=Incident.Status.DISMISSED, resolved_at=as_of or timezone.now())
    )
    if changed:
        audit_record(tenant=tenant, actor=actor, action="incident.dismiss", target=incident)
    return bool(changed)


def resolve_suggested(incident: Incident, now: datetime | None = None) -> bool:
    """The rate of a detected, still active incident has been normal for QUIET_HOURS."""
    if incident.status not in (Incident.Status.SUSPECTED, Incident.Status.OPEN) or not incident.detection:
        return False
    last = (incident.monitor_state or {}).get("last_elevated_at")
    checked = (incident.monitor_state or {}).get("checked_at")
    if not last or not checked:
        return False
    return datetime.fromisoformat(checked) - datetime.fromisoformat(last) >= timedelta(hours=QUIET_HOURS)


def tenants_monitored() -> list[Tenant]:
    return list(Tenant.objects.order_by("pk"))
