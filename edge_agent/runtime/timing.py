"""How long the calling thread waited for a backend that runs one inference at a time.

A LiteRT interpreter (and a crash-contained worker) takes one request at a time behind a lock;
the wait in front of that lock is *queue* time, the rest of a request is *compute*. The backend
notes the wait in a thread-local (two attribute stores, no allocation per request) and the
serving layer takes it right after ``run`` returns, on the same thread, so concurrent requests
never read each other's value. Backends that run requests concurrently (ONNX Runtime) note
nothing: their queue time is zero.
"""

from __future__ import annotations

import threading

_local = threading.local()


def note_queue_wait(seconds: float) -> None:
    """Record that this thread's current request waited ``seconds`` for the backend."""
    _local.queue_s = seconds


def take_queue_wait() -> float:
    """The calling thread's last noted wait (0.0 if none), cleared for the next request."""
    seconds: float = getattr(_local, "queue_s", 0.0)
    _local.queue_s = 0.0
    return seconds
