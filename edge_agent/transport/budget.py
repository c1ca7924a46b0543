"""A device's budget on a metered link: one rate cap and the hours the link may be used.

Model downloads (the chunk transfer) and sample uploads (the capture uploader) draw from the
same :class:`LinkBudget`, so together they stay under ``link.max_rate_kbps`` and inside
``link.windows``: a cellular plan billed by the byte, or a site link shared with production
traffic during the day, sees one cap, not one per feature. Telemetry and status are not
counted: they are small, and a device that cannot say it is alive is worse than one over
budget by a few hundred bytes.

The decisions are pure (:func:`parse_time_window`, :func:`in_time_window`,
:func:`minutes_until_open`, :meth:`LinkBudget.closed`), with the time of day and the clock
passed in or injected.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Sequence

from edge_agent._retry import TokenBucket

__all__ = [
    "LinkBudget",
    "in_time_window",
    "local_minute_of_day",
    "minutes_until_open",
    "parse_time_window",
]


def parse_time_window(text: str) -> tuple[int, int]:
    """``"22:00-06:00"`` -> (start, end) in minutes after midnight; ValueError if malformed."""
    try:
        start_text, end_text = text.split("-")
        sh, sm = (int(v) for v in start_text.split(":"))
        eh, em = (int(v) for v in end_text.split(":"))
    except ValueError:
        raise ValueError(f"time window {text!r}: use HH:MM-HH:MM") from None
    if not (0 <= sh < 24 and 0 <= eh < 24 and 0 <= sm < 60 and 0 <= em < 60):
        raise ValueError(f"time window {text!r}: hours 00-23, minutes 00-59")
    return sh * 60 + sm, eh * 60 + em


def in_time_window(window: tuple[int, int], minute_of_day: int) -> bool:
    """Whether ``minute_of_day`` is in [start, end) (may span midnight; start == end: all day)."""
    start, end = window
    if start == end:
        return True
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


def minutes_until_open(windows: Sequence[tuple[int, int]], minute_of_day: int) -> int:
    """Whole minutes from ``minute_of_day`` until the nearest of ``windows`` opens.

    0 inside a window, or when there are none (any time is allowed). A caller that waits for
    the link adds its own seconds past the minute (``models pull`` sleeps until the opening).
    """
    if not windows or any(in_time_window(window, minute_of_day) for window in windows):
        return 0
    return min((start - minute_of_day) % (24 * 60) for start, _end in windows)


def local_minute_of_day() -> int:
    """Minutes after local midnight, now."""
    now = datetime.datetime.now()
    return now.hour * 60 + now.minute


class LinkBudget:
    """The shared rate cap (payload bytes per second) and time windows of one device's link.

    Thread-safe: the download and the upload thread take from it at once.
    """

    def __init__(
        self,
        max_bytes_per_s: float | None = None,
        windows: Sequence[str] = (),
        *,
        burst_bytes: float | None = None,
        minute_of_day: Callable[[], int] = local_minute_of_day,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``burst_bytes`` defaults to a quarter second of the rate (at least 64 KiB)."""
        self.max_bytes_per_s = max_bytes_per_s
        self.windows = [parse_time_window(w) for w in windows]
        self._window_text = ", ".join(windows)
        self._minute_of_day = minute_of_day
        self._clock = clock
        self.burst_bytes = burst_bytes or max(64 * 1024, (max_bytes_per_s or 0.0) / 4)
        """The most bytes taken at once at full rate (what one request may ask for)."""
        self._bucket = TokenBucket(max_bytes_per_s, self.burst_bytes, clock())
        self._lock = threading.Lock()

    @classmethod
    def unlimited(cls) -> LinkBudget:
        """No cap, any time (a device whose config sets no ``link:``)."""
        return cls()

    @property
    def limited(self) -> bool:
        """Whether there is a cap or a window at all."""
        return self.max_bytes_per_s is not None or bool(self.windows)

    def closed(self) -> str | None:
        """Why the link may not be used now ("outside the link windows ..."), or None."""
        if not self.windows:
            return None
        minute = self._minute_of_day()
        if any(in_time_window(window, minute) for window in self.windows):
            return None
        return f"outside the link windows ({self._window_text})"

    def paused(self) -> bool:
        """Whether the windows hold the link closed now (:meth:`closed` without the reason)."""
        return self.closed() is not None

    def take(self, nbytes: int) -> float:
        """0.0 when ``nbytes`` may be fetched now (they are counted), else seconds to wait.

        For a receiver that asks for bytes (the chunk transfer): it asks only when allowed.
        """
        with self._lock:
            return self._bucket.take(self._clock(), nbytes)

    def book(self, nbytes: int) -> float:
        """Count ``nbytes`` as sent now; the seconds to wait before sending them.

        For a sender pacing itself (the sample uploader).
        """
        with self._lock:
            return self._bucket.book(self._clock(), nbytes)
