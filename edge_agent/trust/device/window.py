"""How many chunks a transfer keeps in flight: about the link's bandwidth x its round trip.

A fixed window is wrong on both ends: 4 MiB in flight is many seconds of queue on a 2 Mbit/s
link (ranges queued behind it stay silent past ``chunk_timeout_s`` and are asked for twice,
and memory holds what the link cannot carry yet), and it may be too little on a fast link with
a long round trip. So the window follows what the device measures, the way BBR does:

- the **delivery rate**: bytes that landed per second, measured over intervals of about one
  round trip, the highest of the last few intervals (a max filter: a momentary dip from a
  slow disk or a scheduling hiccup does not shrink the window, a link that stays slower does
  once the filter forgets its faster past);
- the **round trip**: from sending a range request to its first chunk landing, the lowest of
  the last ``rtt_window_s`` seconds (a min filter: queueing only ever adds delay, so the
  lowest sample is the closest to the path's own);

and the window is ``gain x rate x (round trip + allowance)`` plus a couple of chunks (one
landing, one queued behind it), between a floor and a cap. The allowance (50 ms) covers what
the lowest round trip leaves out: the registry and the device are Python processes on shared
CPUs, and an answer held up by scheduling for a few milliseconds starves a window sized to the
best case. On a 100 Mbit/s link a window of the bare product ran 1.2x slower than curl on a
loaded machine; with the allowance it kept up (benchmarks/link.py). On a slow link the
allowance adds little (12 KB at 2 Mbit/s). A window too small to fill the link measures a
rate that is window-limited, and with a gain of 2 the next window is about twice as large, so
the window doubles per round trip until the link, not the window, limits the rate (BBR's
start-up, without a separate phase). Pure: time is passed in, nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["WindowControl"]


@dataclass
class _Sample:
    at: float
    value: float


class WindowControl:
    """The window (in chunks) for one transfer, from the rate and round trips it measured."""

    def __init__(
        self,
        chunk_bytes: int,
        floor: int,
        cap: int,
        *,
        initial: int | None = None,
        gain: float = 2.0,
        allowance_s: float = 0.05,
        rate_intervals: int = 8,
        rtt_window_s: float = 10.0,
    ) -> None:
        """``floor`` and ``cap`` bound the window in chunks; it starts at ``initial``.

        ``initial`` defaults to 1 MiB worth of chunks (within floor and cap): enough to
        measure a rate and to start a fast link near its speed, and a queue a slow link drains
        within the first range timeout (4 s at 2 Mbit/s, under ``chunk_timeout_s``).
        """
        if not 1 <= floor <= cap:
            raise ValueError(f"window floor {floor} must be 1..cap ({cap})")
        self.chunk_bytes = chunk_bytes
        self.floor, self.cap, self.gain = floor, cap, gain
        self.allowance_s = allowance_s
        if initial is None:
            initial = max(1, (1 << 20) // chunk_bytes)
        self.window = min(cap, max(floor, initial))
        self._rtt_window_s = rtt_window_s
        self._rtts: deque[_Sample] = deque()
        self._rates: deque[float] = deque(maxlen=rate_intervals)
        self._interval_start: float | None = None
        self._interval_bytes = 0

    @property
    def min_rtt(self) -> float | None:
        """The lowest round trip measured lately (seconds); None before the first."""
        return min((s.value for s in self._rtts), default=None)

    @property
    def rate(self) -> float | None:
        """The highest delivery rate of the last intervals (bytes/s); None before the first."""
        return max(self._rates, default=None)

    def round_trip(self, now: float, sent_at: float) -> None:
        """A range request sent at ``sent_at`` got its first chunk at ``now``."""
        self._rtts.append(_Sample(now, max(now - sent_at, 1e-6)))
        while self._rtts and self._rtts[0].at < now - self._rtt_window_s and len(self._rtts) > 1:
            self._rtts.popleft()

    def landed(self, now: float, nbytes: int) -> None:
        """``nbytes`` of a chunk landed at ``now``; closes a rate interval when one is due."""
        if self._interval_start is None:
            self._interval_start, self._interval_bytes = now, 0
            return  # the first chunk only starts the clock: its bytes took an unknown time
        self._interval_bytes += nbytes
        elapsed = now - self._interval_start
        rtt = self.min_rtt or 0.0
        # an interval of at least a round trip and a few chunks, so one sample means something
        if elapsed >= max(rtt, 1e-3) and self._interval_bytes >= 2 * self.chunk_bytes:
            self._rates.append(self._interval_bytes / elapsed)
            self._interval_start, self._interval_bytes = now, 0
            self._update()

    def idle(self, now: float) -> None:
        """Nothing was in flight (a reconnect, a budget wait): the next interval starts anew.

        Otherwise the silence would count as a slow interval and shrink the window for it.
        """
        self._interval_start, self._interval_bytes = None, 0

    def _update(self) -> None:
        rate, rtt = self.rate, self.min_rtt
        if rate is None or rtt is None:
            return
        chunks = self.gain * rate * (rtt + self.allowance_s) / self.chunk_bytes + 2
        self.window = min(self.cap, max(self.floor, round(chunks)))
