"""Retry pacing, in one place: exponential backoff and a token bucket.

Both are pure: the caller passes the attempt number or the current time, so they are unit-tested
without sleeping, and every user (stream reconnects, chunk retries, webhook retries, the
monitor's database retries, the registry's per-device rate limit, the sample uploader's byte
pacing) gets the same arithmetic.
"""

from __future__ import annotations

import random

__all__ = ["TokenBucket", "backoff_delay", "backoff_delays"]


def backoff_delay(
    attempt: int,
    first_s: float,
    max_s: float,
    multiplier: float = 2.0,
    jitter: float = 0.0,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = after the first failure).

    ``first_s * multiplier**(attempt-1)``, capped at ``max_s``, then spread by +-``jitter`` (a
    share of the delay, 0.2 = +-20 %) so devices that lost the same server do not retry in
    lockstep; the spread delay is capped at ``max_s`` too. ``attempt`` < 1: no wait.
    """
    if attempt < 1:
        return 0.0
    base = min(max_s, first_s * multiplier ** min(attempt - 1, 64))
    if jitter <= 0.0:
        return base
    draw = (rand or random).uniform(-jitter, jitter)
    return max(0.0, min(max_s, base * (1.0 + draw)))


def backoff_delays(attempts: int, first_s: float, max_s: float) -> list[float]:
    """The waits between ``attempts`` tries (one fewer than the tries), without jitter."""
    return [backoff_delay(n, first_s, max_s) for n in range(1, attempts)]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``. Pure: time is passed in.

    Two ways to spend, for two kinds of caller:

    * :meth:`take` *admits or refuses* (a server limiting a client): the tokens are taken only
      when the event is allowed, else the answer is how long to wait before asking again.
    * :meth:`book` *always books* (a sender pacing itself): the tokens are taken now, and the
      answer is how long to wait before sending, so the long-run rate holds.

    ``rate`` None: unlimited (both answer 0.0 and nothing is counted).
    """

    def __init__(self, rate: float | None, burst: float, now: float) -> None:
        """Starts full (``burst`` tokens) at time ``now``."""
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """0.0 when an event of ``cost`` tokens is allowed (they are taken), else the wait.

        An event dearer than the whole burst is allowed once the bucket is full and leaves it
        in debt, so the long-run rate holds whatever the cost of single events.
        """
        if self.rate is None:
            return 0.0
        self._refill(now)
        needed = min(float(cost), self.burst)
        if self.tokens >= needed:
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate

    def book(self, now: float, cost: float) -> float:
        """Take ``cost`` tokens now (into debt if need be); the seconds to wait before sending."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
