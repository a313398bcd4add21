"""The one fixed-window limiter, on a controlled clock."""

import uuid

import pytest

from accounts.rate_limits import FixedWindowLimiter


@pytest.fixture(autouse=True)
def private_cache(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_per_key_and_resets_with_the_window():
    clock = Clock(6_000.0 + 15)  # 15 s into a minute
    limiter = FixedWindowLimiter("t", clock=clock)
    assert [limiter.hit("a", 2) for _ in range(3)] == [0, 0, 45.0]
    assert limiter.hit("b", 2) == 0  # another key has its own budget
    clock.now = 6_060.0  # the next window
    assert limiter.hit("a", 2) == 0


def test_the_count_is_shared_between_limiters_of_the_same_name():
    """Two processes are two limiter objects over one cache."""
    clock = Clock(12_000.0)
    one, two = FixedWindowLimiter("shared", clock=clock), FixedWindowLimiter("shared", clock=clock)
    assert one.hit("k", 2) == 0 and two.hit("k", 2) == 0
    assert one.hit("k", 2) == 60.0


def test_batched_hits_reach_the_shared_count_and_overshoot_by_at_most_a_batch():
    clock = Clock(18_000.0)
    one = FixedWindowLimiter("batched", batch=5, flush_seconds=3600, clock=clock)
    two = FixedWindowLimiter("batched", batch=5, flush_seconds=3600, clock=clock)
    assert all(one.hit("k", 8) == 0 for _ in range(5))  # flushed: shared count 5
    allowed = sum(two.hit("k", 8) == 0 for _ in range(10))
    assert 3 <= allowed <= 3 + 5
