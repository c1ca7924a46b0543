"""The agent's clock and signals: periodic housekeeping, and the main loop that systemd watches.

``Housekeeping`` runs periodic tasks on its own thread (so an embedded agent reports like the
daemon does) and its heartbeat is one of the watchdog's progress sources. ``serve_until_stopped``
is the main thread's loop: SIGTERM/SIGINT stop, SIGHUP asks for a reload, and WATCHDOG=1 goes
to systemd only while everything registered for the watchdog makes progress.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.agent import systemd


@dataclass
class _Task:
    interval_s: float
    run: Callable[[], None]
    due: float


class Housekeeping:
    """Periodic tasks on one thread, ticking every ``tick_s`` until ``stop`` is set."""

    def __init__(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        self._stop = stop
        self._tick_s = tick_s
        self._tasks: list[_Task] = []
        self._thread: threading.Thread | None = None
        self.beat = time.monotonic()
        """The monotonic time of the last tick (the watchdog's progress source)."""

    def every(self, interval_s: float, task: Callable[[], None], *, first_in_s: float = 0) -> None:
        """Run ``task`` every ``interval_s`` (0: each tick), the first time after ``first_in_s``."""
        self._tasks.append(_Task(interval_s, task, time.monotonic() + first_in_s))

    def start(self) -> None:
        """Start ticking on a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait for the thread to end (after ``stop`` was set)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.beat = now = time.monotonic()
            for task in self._tasks:
                if now >= task.due:
                    task.run()
                    task.due = now + task.interval_s


def serve_until_stopped(
    stop: threading.Event,
    reload: threading.Event,
    *,
    healthy: Callable[[], bool],
    on_reload: Callable[[], None],
) -> None:
    """Loop until SIGTERM/SIGINT (or ``stop``); SIGHUP runs ``on_reload``. Main thread only."""
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    watchdog = systemd.watchdog_interval_s()
    while not stop.is_set():
        if watchdog is not None and healthy():
            systemd.notify("WATCHDOG=1")
        if reload.is_set():
            reload.clear()
            on_reload()
        stop.wait(min(watchdog or 1.0, 1.0))
