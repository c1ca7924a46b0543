"""The registry's per-device rate limit (time passed in, no clock)."""

from __future__ import annotations

from edge_agent.fleet.registry import DeviceRateLimiter


def test_limits_are_per_device():
    now = [0.0]
    limiter = DeviceRateLimiter(rate=1, burst=1, clock=lambda: now[0])
    assert limiter.check("a") == 0.0 and limiter.check("b") == 0.0
    assert limiter.check("a") == 1.0
    now[0] = 1.0
    assert limiter.check("a") == 0.0
