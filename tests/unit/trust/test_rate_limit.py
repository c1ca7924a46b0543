"""The registry's per-device rate limit (time passed in, no clock)."""

from __future__ import annotations

from edge_agent.fleet.registry import DeviceRateLimiter, TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert abs(bucket.take(0.0) - 0.1) < 1e-9
    assert bucket.take(0.1) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == 2.0  # refills only up to the burst


def test_limits_are_per_device():
    now = [0.0]
    limiter = DeviceRateLimiter(rate=1, burst=1, clock=lambda: now[0])
    assert limiter.check("a") == 0.0 and limiter.check("b") == 0.0
    assert limiter.check("a") == 1.0
    now[0] = 1.0
    assert limiter.check("a") == 0.0


def test_a_range_costs_one_token_per_chunk_and_dear_ranges_leave_debt():
    bucket = TokenBucket(rate=100, burst=8, now=0.0)
    assert bucket.take(0.0, cost=6) == 0.0 and bucket.tokens == 2.0
    assert abs(bucket.take(0.0, cost=6) - 0.04) < 1e-9  # 4 more tokens needed at 100/s
    assert bucket.take(0.06, cost=20) == 0.0  # dearer than the burst: allowed when full
    assert bucket.tokens == -12.0  # ... and paid back before the next range
    assert abs(bucket.take(0.06, cost=1) - 0.13) < 1e-9
    assert bucket.take(0.20, cost=1) == 0.0  # the long-run rate holds
