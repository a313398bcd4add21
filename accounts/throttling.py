"""Throttling helpers: the login username that django-axes counts failures against, and a
small fixed-window counter in the cache for expensive or unauthenticated API calls."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The email as typed, case- and space-folded, so `Ops@X.test ` and `ops@x.test` share one count."""
    raw = (credentials or {}).get("username")
    if raw is None:
        raw = request.POST.get("username", "")
    return str(raw).strip().lower()[:254]


def hit(key: str, *, limit: int, window_seconds: int = 60) -> int | None:
    """Count one request against `key`; returns the seconds to wait when over `limit`, else None."""
    window = int(time.time() // window_seconds)
    bucket = f"throttle:{key}:{window}"
    cache.add(bucket, 0, window_seconds + 5)
    try:
        count = cache.incr(bucket)
    except ValueError:  # evicted between add and incr
        cache.set(bucket, 1, window_seconds + 5)
        count = 1
    if count > limit:
        return max(1, window_seconds - int(time.time()) % window_seconds)
    return None
