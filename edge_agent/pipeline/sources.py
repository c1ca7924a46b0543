"""Frame sources read through OpenCV ``VideoCapture``: camera devices, video files, streams.

Each source owns a reader thread that decodes frames as they come and hands them to the
pipeline through a :class:`~edge_agent.pipeline.frames.FrameQueue`:

* **live** sources (camera, RTSP/HTTP streams, a video file with ``realtime: true``) never wait
  for inference: beyond ``queue_size`` the oldest frame is dropped and counted, and frames
  beyond ``max_fps`` are skipped (counted apart: that is the cap working, not overload);
* a **video file** (``realtime: false``) is read as fast as the pipeline takes frames, none
  dropped, then the source is *finished* (or starts again with ``loop: true``).

When a stream cannot be opened or drops (read fails or times out), the reader releases it and
reopens with exponential backoff and jitter (:func:`~edge_agent._retry.backoff_delay`),
forever, until stopped; the counters say how often. A video file that cannot be opened is not
retried: the source finishes with ``error`` set.

The folder watcher and MQTT tensor source live in their own modules; :func:`build_source`
makes any of them from config.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_agent._retry import backoff_delay
from edge_agent.config import (
    CameraSource,
    ReconnectSettings,
    RtspSource,
    SourceSettings,
    VideoSource,
)
from edge_agent.errors import InputError
from edge_agent.pipeline.frames import Frame, FrameQueue, RateLimiter

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the pipeline needs from a source."""

    name: str

    def start(self) -> None:
        """Start producing frames (a thread of the source's own, or a subscription)."""
        ...

    def read(self, timeout: float) -> Frame | None:
        """The next frame, waiting up to ``timeout`` seconds; None if none came."""
        ...

    @property
    def finished(self) -> bool:
        """True when no frame will ever come again (end of a file, fatal error)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters and state, JSON-able."""
        ...

    def stop(self) -> None:
        """Stop producing and release what the source holds."""
        ...


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a capture source uses (so tests can inject one)."""

    def isOpened(self) -> bool:
        """Whether the stream is open."""
        ...

    def read(self) -> tuple[bool, np.ndarray | None]:
        """Decode the next frame."""
        ...

    def get(self, prop: int) -> float:
        """A capture property."""
        ...

    def release(self) -> None:
        """Close the stream."""
        ...


CaptureOpener = Callable[[], Capture]


@dataclass
class CaptureStats:
    """Counters of a capture source."""

    frames_read: int = 0
    skipped: int = 0
    """Frames left out by the ``max_fps`` cap."""
    opens: int = 0
    """Successful opens (the first one, then every reconnect)."""
    failed_opens: int = 0
    stream_drops: int = 0
    """Times an open stream stopped delivering (read failed or timed out)."""
    state: str = "idle"
    last_error: str = ""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise InputError(
            "video, camera and stream sources need OpenCV: pip install 'edge-agent[camera]'"
        ) from None
    return cv2


class CaptureSource:
    """A camera, video file or network stream, read by a thread of its own."""

    def __init__(
        self,
        name: str,
        opener: CaptureOpener,
        *,
        live: bool,
        queue_size: int,
        max_fps: float | None = None,
        reconnect: ReconnectSettings | None = None,
        retry_open: bool = True,
        loop: bool = False,
        pace_to_file_fps: bool = False,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        """``opener`` makes a new capture for every (re)connect; ``live``: drop-oldest."""
        self.name = name
        self._opener = opener
        self._live = live
        self.queue = FrameQueue(queue_size)
        self._limiter = RateLimiter(max_fps)
        self._reconnect = reconnect or ReconnectSettings()
        self._retry_open = retry_open
        self._loop = loop
        self._pace = pace_to_file_fps
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        self.counters = CaptureStats()
        self.error: str | None = None
        self._index = 0

    # -- Source ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> Frame | None:
        """The next frame (None after ``timeout`` seconds without one)."""
        return self.queue.get(timeout)

    @property
    def finished(self) -> bool:
        """The file ended (without ``loop``) or cannot be opened, and the queue is empty."""
        return self._finished.is_set() and len(self.queue) == 0

    def stats(self) -> dict[str, Any]:
        """Counters: frames read, dropped, skipped, opens, failed opens, drops, state."""
        c = self.counters
        return {
            "frames_read": c.frames_read,
            "dropped": self.queue.dropped,
            "skipped": c.skipped,
            "reconnects": max(0, c.opens - 1),
            "failed_opens": c.failed_opens,
            "stream_drops": c.stream_drops,
            "queue_depth": len(self.queue),
            "state": c.state,
            "last_error": c.last_error,
        }

    def stop(self) -> None:
        """Stop the reader (waits for a read in progress, at most the read timeout)."""
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=self._reconnect.read_timeout_s + 2.0)
            self._thread = None

    # -- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                capture = self._open()
                if capture is None:
                    failures += 1
                    if not self._retry_open:
                        self.error = self.counters.last_error
                        return
                    self._wait_backoff(failures)
                    continue
                failures = 0
                try:
                    outcome = self._pump(capture)
                finally:
                    capture.release()
                if outcome == "end":
                    return
                if outcome == "dropped":
                    failures += 1
                    self._wait_backoff(failures)
        except Exception as exc:  # a bug here must not die silently
            log.exception("source %s: reader failed", self.name)
            self.error = f"reader failed: {exc!r}"
        finally:
            self.counters.state = "stopped" if self._stop.is_set() else "finished"
            self._finished.set()
            self.queue.close()

    def _open(self) -> Capture | None:
        self.counters.state = "connecting"
        capture: Capture | None = None
        try:
            opened = self._opener()
        except Exception as exc:
            reason = f"cannot open: {exc}"
        else:
            reason = "cannot open (unreachable, wrong URL/path, or no such device)"
            if opened.isOpened():
                capture = opened
            else:
                opened.release()
        if capture is None:
            self.counters.failed_opens += 1
            self.counters.last_error = reason
            if self.counters.failed_opens == 1 or self.counters.failed_opens % 10 == 0:
                log.warning(
                    "source %s: %s (attempt %d)", self.name, reason, self.counters.failed_opens
                )
            return None
        self.counters.opens += 1
        self.counters.state = "streaming"
        if self.counters.opens > 1:
            log.info("source %s: reconnected (%d)", self.name, self.counters.opens - 1)
        return capture

    def _pump(self, capture: Capture) -> str:
        """Read until stopped ('stop'), the file ends ('end'/'loop') or the stream drops."""
        file_fps = capture.get(5) if self._pace else 0.0  # cv2.CAP_PROP_FPS == 5
        pacer = RateLimiter(file_fps if file_fps and file_fps > 0 else None)
        position = 0
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                if not self._live or (self._pace and not self._retry_open):
                    return "loop" if self._loop else "end"
                self.counters.stream_drops += 1
                self.counters.last_error = "stream stopped delivering frames"
                log.warning("source %s: stream dropped; reconnecting", self.name)
                self.counters.state = "reconnecting"
                return "dropped"
            self.counters.frames_read += 1
            if self._pace:
                # A file played like a camera: the frame is "captured" when its time comes,
                # so its timestamp is taken after the wait, not when it was decoded ahead.
                delay = pacer.wait_s(time.monotonic())
                if delay > 0 and self._sleep(delay):
                    return "stop"
            frame = Frame(image, str(self._index), meta={"position": position})
            self._index += 1
            position += 1
            if self._live:
                if not self._limiter.allow(time.monotonic()):
                    self.counters.skipped += 1
                    continue
                self.queue.put(frame)
            else:
                delay = self._limiter.wait_s(time.monotonic())
                if delay > 0 and self._sleep(delay):
                    return "stop"
                while not self._stop.is_set():
                    if self.queue.put(frame, block=True, timeout=0.2):
                        break
        return "stop"

    def _wait_backoff(self, failures: int) -> None:
        r = self._reconnect
        delay = backoff_delay(failures, r.initial_s, r.max_s, r.multiplier, r.jitter)
        self.counters.state = "reconnecting"
        self._sleep(delay)


# -- openers -----------------------------------------------------------------------------------


def open_network_stream(url: str, reconnect: ReconnectSettings, transport: str) -> Capture:
    """Open a network stream with FFmpeg and open/read timeouts (so a dead server is noticed)."""
    cv2 = _cv2()
    if url.startswith(("rtsp://", "rtsps://")):
        # FFmpeg options are process-wide in OpenCV; every RTSP source shares one transport.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{transport}"
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(reconnect.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(reconnect.read_timeout_s * 1000),
    ]
    capture: Capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    return capture


def open_camera(settings: CameraSource) -> Capture:
    """Open a local camera and request its size and frame rate."""
    cv2 = _cv2()
    capture = cv2.VideoCapture(settings.device)
    if capture.isOpened():
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, settings.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, settings.height),
            (cv2.CAP_PROP_FPS, settings.fps),
        ):
            if value is not None:
                capture.set(prop, value)
    result: Capture = capture
    return result


def open_video_file(settings: VideoSource) -> Capture:
    """Open a video file (InputError when it does not exist)."""
    if not settings.path.is_file():
        raise InputError(f"video source: {settings.path} does not exist or is not a file")
    cv2 = _cv2()
    capture: Capture = cv2.VideoCapture(str(settings.path))
    return capture


def build_capture_source(
    name: str, settings: SourceSettings, queue_size: int, max_fps: float | None
) -> CaptureSource:
    """A :class:`CaptureSource` for a camera, video or RTSP config."""
    if isinstance(settings, VideoSource):
        return CaptureSource(
            name,
            lambda: open_video_file(settings),
            live=settings.realtime,
            queue_size=queue_size,
            max_fps=max_fps,
            retry_open=False,
            loop=settings.loop,
            pace_to_file_fps=settings.realtime,
        )
    if isinstance(settings, RtspSource):
        return CaptureSource(
            name,
            lambda: open_network_stream(settings.url, settings.reconnect, settings.transport),
            live=True,
            queue_size=queue_size,
            max_fps=max_fps,
            reconnect=settings.reconnect,
        )
    if isinstance(settings, CameraSource):
        return CaptureSource(
            name,
            lambda: open_camera(settings),
            live=True,
            queue_size=queue_size,
            max_fps=max_fps,
            reconnect=settings.reconnect,
        )
    raise InputError(f"pipeline {name}: {settings.type} is not a capture source")
