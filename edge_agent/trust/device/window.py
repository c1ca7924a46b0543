"""How much a transfer keeps in flight, and in what frames: both follow the measured link.

A fixed window is wrong on both ends: 4 MiB in flight is many seconds of queue on a 2 Mbit/s
link (ranges queued behind it stay silent past ``chunk_timeout_s`` and are asked for twice,
and memory holds what the link cannot carry yet), and it may be too little on a fast link with
a long round trip. So the window follows what the device measures, the way BBR does:

- the **delivery rate**: bytes that landed per second, measured over intervals of about one
  round trip, the highest of the last few intervals (a max filter: a momentary dip from a
  slow disk or a scheduling hiccup does not shrink the window, a link that stays slower does
  once the filter forgets its faster past);
- the **round trip**: from sending a range request to its first frame landing, the lowest of
  the last ``rtt_window_s`` seconds (a min filter: queueing only ever adds delay, so the
  lowest sample is the closest to the path's own);

and the window is ``rate x (2 x round trip + allowance)`` plus the frame landing, between a
floor and a cap, counted in units (the smallest frame). The allowance (25 ms) covers what the
lowest round trip leaves out: the registry and the device are Python processes on shared
CPUs, and an answer held up by scheduling for a few milliseconds starves a window sized to
the best case (on a 100 Mbit/s link a window of the bare product ran 1.2x slower than curl on
a loaded machine). It is not larger because what is in flight beyond the path's own bandwidth
x delay waits in the link's buffer: a modem's buffer of 50 ms overflows, the packets behind a
drop wait out of order at the device, and a cut loses them all. With twice the product plus
50 ms and two 256 KiB chunks, a 16 Mbit/s link dropped one packet in five and five cuts cost
22% of the model on the wire; with this window and a second frame on top 10-11%, with one frame
9-10% (of which curl pays 6-7 on a clean link: benchmarks/link.py). A window too small to fill
the link measures a rate that is window-limited, and the next window is at least twice as
large (twice the round trip), so the window doubles per round trip until the link, not the
window, limits the rate (BBR's start-up, without a separate phase).

The **frame** (one MQTT message) is the smallest unit doubled that carries ``FRAME_TIME_S`` of
the measured rate: a cut loses the frame in flight, so on a slow link frames are small (at
16 Mbit/s 16 KiB), and on a fast one a frame is a whole chunk (fewest messages, no copy).
Pure: time is passed in, nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["FIRST_FRAME_BYTES", "FRAME_TIME_S", "WindowControl"]

FRAME_TIME_S = 0.005
"""About how long one frame should occupy the link: what one cut may cost, in link time.

At 16 Mbit/s that is 16 KiB frames: five cuts of a 5 MB model cost 1.091-1.095x its size on
the wire, against 1.09-1.12x with 10 ms (32 KiB); each frame's header is about 170 bytes."""

FIRST_FRAME_BYTES = 64 * 1024
"""The frame before a rate is measured (a quarter chunk): the smallest frames on a link that
turns out fast cost a third of a 5 MB download's speed on loopback (each MQTT message costs
the registry, the broker and the device about 170 us), and a cut in the first half second of
a slow link loses at most this much."""


@dataclass
class _Sample:
    at: float
    value: float


class WindowControl:
    """The window (in units) and frame size for one transfer, from what it measured."""

    def __init__(
        self,
        unit_bytes: int,
        floor: int,
        cap: int,
        *,
        max_frame: int | None = None,
        initial: int | None = None,
        rtt_gain: float = 2.0,
        allowance_s: float = 0.025,
        rate_intervals: int = 8,
        rtt_window_s: float = 10.0,
    ) -> None:
        """``floor`` and ``cap`` bound the window in units; it starts at ``initial``.

        ``max_frame`` (a multiple of ``unit_bytes``; default one unit) is the largest frame,
        a chunk. ``initial`` defaults to 512 KiB worth of units (within floor and cap): enough
        to measure a rate and start a fast link. 1 MiB overflowed a 16 Mbit/s modem's buffer
        at the start of every download (hundreds of dropped packets, and a cut then lost what
        waited behind them: five cuts of a 5 MB model cost up to 1.19x); 256 KiB kept a
        loopback link slow for a third of a 5 MB download. The window then follows the
        first rate measured, after 8 units.
        """
        if not 1 <= floor <= cap:
            raise ValueError(f"window floor {floor} must be 1..cap ({cap})")
        self.unit_bytes = unit_bytes
        self.max_frame = max_frame or unit_bytes
        self.floor, self.cap, self.rtt_gain = floor, cap, rtt_gain
        self.allowance_s = allowance_s
        if initial is None:
            initial = max(1, (512 << 10) // unit_bytes)
        self.window = min(cap, max(floor, initial))
        self._rtt_window_s = rtt_window_s
        self._rtts: deque[_Sample] = deque()
        self._rates: deque[float] = deque(maxlen=rate_intervals)
        self._interval_start: float | None = None
        self._interval_bytes = 0
        self._first_rate: float | None = None

    @property
    def min_rtt(self) -> float | None:
        """The lowest round trip measured lately (seconds); None before the first."""
        return min((s.value for s in self._rtts), default=None)

    @property
    def rate(self) -> float | None:
        """The highest delivery rate of the last intervals (bytes/s); None before the first.

        Until the first full interval, the first short one's (see :meth:`landed`).
        """
        return max(self._rates, default=self._first_rate)

    def frame_bytes(self) -> int:
        """Bytes per frame: the smallest unit doubled that carries ``FRAME_TIME_S`` of the rate.

        At most ``max_frame`` and always dividing it; ``FIRST_FRAME_BYTES`` before a rate is
        measured.
        """
        target = self.rate * FRAME_TIME_S if self.rate else FIRST_FRAME_BYTES
        frame = self.unit_bytes
        while frame < target and self.max_frame % (2 * frame) == 0:
            frame *= 2
        return frame

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
        if elapsed < max(self.min_rtt or 0.0, 1e-3):
            return
        if self._interval_bytes >= 2 * self.max_frame:
            # an interval of at least a round trip and two of the largest frames, so a sample
            # means something (a backlog the device reads in one go is not the link's rate,
            # and the max filter would keep such an overestimate for eight intervals)
            self._rates.append(self._interval_bytes / elapsed)
            self._interval_start, self._interval_bytes = now, 0
            self._update()
        elif not self._rates and self._interval_bytes >= 8 * self.unit_bytes:
            # a first, provisional rate from the first 8 units, used until the first full
            # interval: waiting 512 KiB for it kept a loopback link on the starting window
            # and the smallest frames for a third of a 5 MB download
            self._first_rate = self._interval_bytes / elapsed
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
        in_flight = rate * (self.rtt_gain * rtt + self.allowance_s) + self.frame_bytes()
        self.window = min(self.cap, max(self.floor, round(in_flight / self.unit_bytes)))
