"""Fixed-window rate limits counted in the shared cache (Redis in production), so every web
process sees the same count. The one mechanism behind every limit: server keys, publishable
keys, and anything else that needs a per-key budget per window."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection


@dataclass
class _Pending:
    window: int
    pending: int = 0
    known_total: int = 0
    flushed_at: float = 0.0


class FixedWindowLimiter:
    """At most `limit` hits per key per `window_seconds`.

    With `batch > 1`, each process adds its hits to the shared count in batches (every `batch`
    hits or `flush_seconds`), so a hot path rarely pays a cache round trip; the limit may then
    overshoot by one batch per process. `clock` is injectable so tests do not depend on where
    in the current minute they happen to run.
    """

    MAX_LOCAL_KEYS = 10_000

    def __init__(
        self,
        name: str,
        *,
        window_seconds: int = 60,
        batch: int = 1,
        flush_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.window_seconds = window_seconds
        self.batch = batch
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._local: dict[str, _Pending] = {}

    def reset(self) -> None:
        """Forget this process's unflushed hits (tests use a fresh cache per test)."""
        self._local.clear()

    def _cache_key(self, key: str, window: int) -> str:
        digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        return f"ratelimit:{self.name}:{digest}:{window}"

    def _add(self, key: str, window: int, n: int) -> int:
        cache_key = self._cache_key(key, window)
        timeout = self.window_seconds + 10
        if cache.add(cache_key, n, timeout=timeout):
            return n
        try:
            return cache.incr(cache_key, n)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, n, timeout=timeout)
            return n

    def hit(self, key: str, limit: int) -> float:
        """Count one hit; seconds to wait until the next window when over `limit`, else 0."""
        now = self.clock()
        window = int(now // self.window_seconds)
        wait = (window + 1) * self.window_seconds - now
        if self.batch <= 1:
            return wait if self._add(key, window, 1) > limit else 0.0
        local = self._local.get(key)
        if local is None or local.window != window:
            if len(self._local) > self.MAX_LOCAL_KEYS:
                self._local.clear()
            local = self._local[key] = _Pending(window=window, flushed_at=time.monotonic())
        local.pending += 1
        if local.pending >= self.batch or time.monotonic() - local.flushed_at >= self.flush_seconds:
            local.known_total = self._add(key, window, local.pending)
            local.pending = 0
            local.flushed_at = time.monotonic()
        return wait if local.known_total + local.pending > limit else 0.0


def retry_after(wait: float) -> int:
    """A limiter's wait as a Retry-After value: whole seconds, at least 1 (0 when not limited)."""
    return max(1, math.ceil(wait)) if wait else 0


class Budget:
    """A limiter with its per-window limit read from a setting (so tests and deployments can
    change it), answering in whole seconds to wait."""

    def __init__(self, limiter: FixedWindowLimiter, setting: str, default: int) -> None:
        self.limiter = limiter
        self.setting = setting
        self.default = default

    @property
    def limit(self) -> int:
        return int(getattr(settings, self.setting, self.default))

    def wait(self, key: str) -> int:
        """Count one hit for `key`; whole seconds until the next window when over, else 0."""
        return retry_after(self.limiter.hit(key, self.limit))


# Reads that evaluate a trigger over every customer of a tenant, shared by the API and the
# pages (the same work, one budget per tenant): the preview (the builder's live count, the
# API's preview) and the backtest (features recomputed for each of the last days).
PREVIEW_BUDGET = Budget(FixedWindowLimiter("tenant-preview"), "PREVIEW_RATE_LIMIT_PER_MINUTE", 60)
BACKTEST_BUDGET = Budget(FixedWindowLimiter("tenant-backtest"), "BACKTEST_RATE_LIMIT_PER_MINUTE", 10)


def tenant_key(tenant_id: object) -> str:
    """A tenant's budget key. With the database's name: the cache (Redis) may outlive a database
    (test databases are recreated, ids start again) and must not carry counts over to it."""
    return f"{connection.settings_dict['NAME']}:tenant:{tenant_id}"
