"""Frames between a source and its pipeline, and the pure timing decisions sources make.

A source's reader thread puts :class:`Frame` objects into a :class:`FrameQueue`; the pipeline
thread takes them out. Live sources (camera, RTSP) never wait for the pipeline: when the queue is
full the *oldest* frame is dropped and counted, so results stay about the present. File sources
wait instead (``block=True``), so every frame of a video is processed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    """One unit of work: an image (H x W x C uint8, BGR as OpenCV decodes) or named tensors."""

    data: np.ndarray | dict[str, np.ndarray]
    frame_id: str
    """Where it came from: ``<index>`` of a stream, a file name, an MQTT topic + counter."""
    timestamp: float = field(default_factory=time.time)
    """Capture time (unix seconds)."""
    meta: dict[str, Any] = field(default_factory=dict)


class FrameQueue:
    """A bounded frame queue: drop-oldest for live sources, or blocking for files."""

    def __init__(self, maxsize: int) -> None:
        """``maxsize`` >= 1 frames."""
        if maxsize < 1:
            raise ValueError("queue size must be >= 1")
        self.maxsize = maxsize
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame, *, block: bool = False, timeout: float | None = None) -> bool:
        """Add ``frame``. Full: drop the oldest (``block=False``) or wait for room.

        Returns False when the frame was not queued (the queue is closed, or the wait timed out).
        """
        with self._cond:
            if block and not self._cond.wait_for(
                lambda: self._closed or len(self._items) < self.maxsize, timeout
            ):
                return False
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> Frame | None:
        """The oldest frame, waiting up to ``timeout`` seconds; None if there is none."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout):
                return None
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Wake every waiter; later puts are refused (queued frames can still be taken)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class RateLimiter:
    """Frame-rate cap: ``allow(now)`` for live sources (skip), ``wait_s(now)`` for files (pace)."""

    def __init__(self, max_fps: float | None) -> None:
        """``max_fps`` None: no cap."""
        self.interval = 0.0 if not max_fps else 1.0 / max_fps
        self._next = float("-inf")

    def allow(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` may pass (and, if so, book its slot)."""
        if self.interval == 0.0:
            return True
        if now < self._next:
            return False
        # Book from the previous slot, so arrival jitter does not lower the rate; after a
        # pause longer than one interval, start again from now instead of letting a burst by.
        behind = now - self._next
        self._next = (self._next if behind < self.interval else now) + self.interval
        return True

    def wait_s(self, now: float) -> float:
        """Seconds to wait before the next frame may go (0 when it may go now); books it."""
        if self.interval == 0.0:
            return 0.0
        start = max(self._next, now)
        self._next = start + self.interval
        return start - now
