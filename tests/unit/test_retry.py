"""Retry pacing: backoff growth, cap and jitter; the token bucket's two ways to spend."""

from __future__ import annotations

import random

import pytest

from edge_agent._retry import TokenBucket, backoff_delay, backoff_delays


def test_backoff_grows_exponentially_to_the_cap():
    delays = [backoff_delay(n, 0.5, 8.0) for n in range(0, 8)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_jitter_stays_in_its_band():
    rand = random.Random(1)
    values = [backoff_delay(3, 1.0, 60.0, jitter=0.2, rand=rand) for _ in range(200)]
    assert all(3.2 <= v <= 4.8 for v in values)
    assert len(set(values)) > 100


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert abs(bucket.take(0.0) - 0.1) < 1e-9
    assert bucket.take(0.1) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == 2.0  # refills only up to the burst


def test_a_range_costs_one_token_per_chunk_and_dear_ranges_leave_debt():
    bucket = TokenBucket(rate=100, burst=8, now=0.0)
    assert bucket.take(0.0, cost=6) == 0.0 and bucket.tokens == 2.0
    assert abs(bucket.take(0.0, cost=6) - 0.04) < 1e-9  # 4 more tokens needed at 100/s
    assert bucket.take(0.06, cost=20) == 0.0  # dearer than the burst: allowed when full
    assert bucket.tokens == -12.0  # ... and paid back before the next range
    assert abs(bucket.take(0.06, cost=1) - 0.13) < 1e-9
    assert bucket.take(0.20, cost=1) == 0.0  # the long-run rate holds


def test_token_bucket_paces_to_the_rate():
    bucket = TokenBucket(1000.0, burst=1000.0, now=0.0)
    assert bucket.book(0.0, 1000) == 0.0
    assert bucket.book(0.0, 500) == pytest.approx(0.5)
    assert bucket.book(1.0, 500) == pytest.approx(0.0)
    assert TokenBucket(None, 1, 0.0).book(0.0, 10**9) == 0.0


def test_backoff_delays_lists_the_waits_between_tries():
    assert backoff_delays(5, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0]
    assert backoff_delays(1, 0.5, 3.0) == [] and backoff_delays(0, 0.5, 3.0) == []


def test_backoff_with_another_multiplier_and_a_huge_attempt_stays_capped():
    assert backoff_delay(3, 1.0, 100.0, multiplier=3.0) == 9.0
    assert backoff_delay(10**6, 0.25, 8.0) == 8.0  # no overflow for a long outage


def test_jitter_never_exceeds_the_cap_nor_goes_negative():
    rand = random.Random(7)
    values = [backoff_delay(20, 1.0, 30.0, jitter=0.5, rand=rand) for _ in range(500)]
    assert all(15.0 <= v <= 30.0 for v in values)
    wild = [backoff_delay(1, 1.0, 30.0, jitter=3.0, rand=rand) for _ in range(500)]
    assert min(wild) >= 0.0


def test_take_refuses_without_taking_but_book_always_takes():
    """take() is admission (the registry), book() is self-pacing (the uploader)."""
    admit = TokenBucket(rate=2.0, burst=1, now=0.0)
    assert admit.take(0.0) == 0.0
    assert admit.take(0.0) == pytest.approx(0.5) and admit.tokens == 0.0  # refused, untouched
    pace = TokenBucket(rate=2.0, burst=1, now=0.0)
    assert pace.book(0.0, 1) == 0.0
    assert pace.book(0.0, 1) == pytest.approx(0.5) and pace.tokens == -1.0  # booked: in debt
    assert pace.book(0.5, 1) == pytest.approx(0.5)  # the debt is paid before the next send


def test_unlimited_bucket_counts_nothing():
    bucket = TokenBucket(None, 1, 0.0)
    assert bucket.take(0.0, cost=10**9) == 0.0 and bucket.tokens == 1.0
