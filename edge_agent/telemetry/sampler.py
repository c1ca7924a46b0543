"""Bernoulli sampling of inferences at O(1) and almost no cost per call.

Instead of drawing a random number per inference, the sampler draws the *gap* to the next
sampled call from the geometric distribution (the number of failures before a success of a
Bernoulli(rate) trial) and counts it down. Each call is then one decrement and one comparison,
and the sampled calls are distributed exactly as independent coin flips.
"""

from __future__ import annotations

import math
import random


class Sampler:
    """Decides, per call, whether this inference is sampled (probability ``rate``)."""

    __slots__ = ("_log_miss", "_random", "_skip", "rate", "sampled", "seen")

    def __init__(self, rate: float, seed: int | None = None) -> None:
        """``rate`` in (0, 1]; ``seed`` makes the sequence reproducible (tests, benchmarks)."""
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"sampling rate must be in (0, 1], got {rate}")
        self.rate = rate
        self._random = random.Random(seed)
        self._log_miss = math.log1p(-rate) if rate < 1.0 else 0.0
        self.seen = 0
        self.sampled = 0
        self._skip = self._next_gap()

    def _next_gap(self) -> int:
        if self.rate >= 1.0:
            return 0
        u = 1.0 - self._random.random()  # (0, 1]
        return int(math.log(u) / self._log_miss)

    def should_sample(self) -> bool:
        """True for a sampled call. Hot path: a decrement and a compare most of the time."""
        self.seen += 1
        if self._skip > 0:
            self._skip -= 1
            return False
        self.sampled += 1
        self._skip = self._next_gap()
        return True
