"""Fixed-window rate limits counted in the shared cache (Redis in production), so every web
process sees the same count. The one mechanism behind every limit: server keys, publishable
keys, and anything else that needs a per-key budget per window."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache


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
