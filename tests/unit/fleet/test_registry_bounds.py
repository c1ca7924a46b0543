"""The registry's per-device state stays bounded whatever device ids a flood invents."""

from __future__ import annotations

import time

from edge_agent.fleet.registry import DeviceRateLimiter, ServedCounts


def test_rate_limiter_holds_at_most_max_devices_under_a_flood_of_invented_ids():
    """Regression (issue 12, item 7): buckets were only forgotten when idle, so ids invented
    faster than a bucket refills (62 ms at the defaults) grew the map without bound, and every
    new id past 10,000 scanned all of them."""
    now = [0.0]
    limiter = DeviceRateLimiter(4096.0, 256, clock=lambda: now[0], max_devices=1000)
    started = time.perf_counter()
    for i in range(50_000):
        now[0] += 1e-6  # far faster than any bucket refills: nothing is idle
        assert limiter.check(f"ghost-{i}", 256) == 0.0
    assert len(limiter) == 1000
    assert time.perf_counter() - started < 5  # no scan of every bucket per new id


def test_rate_limiter_keeps_a_busy_device_in_debt_while_ghosts_come_and_go():
    now = [0.0]
    limiter = DeviceRateLimiter(10.0, 10, clock=lambda: now[0], max_devices=100)
    assert limiter.check("dev-1", 10) == 0.0
    assert limiter.check("dev-1", 10) > 0  # its burst is spent
    for i in range(50):  # fewer ghosts than the bound: dev-1 is still remembered
        limiter.check(f"ghost-{i}")
    assert limiter.check("dev-1", 10) > 0


def test_served_counts_keep_the_newest_pairs_only():
    counts = ServedCounts(limit=100)
    for i in range(10_000):
        counts.add(f"ghost-{i}", "targets/models/digits/1/digits.onnx", 1)
    counts.add("dev-1", "targets/a", 3)
    counts.add("dev-1", "metadata/1.root.json", 1)
    assert len(counts) == 100
    assert counts.total("dev-1") == 4 and counts.total("dev-1", "targets/") == 3
    assert counts.total("ghost-0") == 0  # forgotten, the oldest
    assert counts.total("ghost-9999") == 1
