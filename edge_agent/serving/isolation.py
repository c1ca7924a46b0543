"""Inference in a supervised worker process, so a native crash in a delegate is survivable.

Edge TPU and GPU delegates do segfault. With isolation the runtime lives in a child process
(multiprocessing, spawn start method: no inherited threads or locks); the agent talks to it
over a pipe. When the child dies (crash, OOM kill) or hangs past the inference timeout, it is
restarted and the request retried once; after ``crash_limit`` crashes within ``crash_window_s``
the next worker binds the next delegate down the preference list (``delegates.demote``) and the
backend reports itself degraded.

Tensors do not go through the pipe: the agent copies the inputs into a shared-memory region it
owns (``serving/shm.py``), the worker runs on arrays over that region and writes its outputs
behind them, and the pipe carries only where they lie (a few hundred bytes). The agent waits on
the pipe and the worker's process sentinel in one poll(2), so a reply is read as soon as it is
written and a death is seen as soon as it happens. A crash loses the request in flight, nothing
else: the region is dropped with the worker and a fresh one made for its successor.
Tensors numpy cannot lay out as raw bytes (strings, objects) still travel pickled.
``benchmarks/isolation.py`` measures the cost against inline inference.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import select
import threading
import time
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.errors import EdgeAgentError, InputError, ModelError
from edge_agent.runtime.base import BoundDelegate, TensorSpec
from edge_agent.runtime.delegates import demote
from edge_agent.runtime.timing import note_queue_wait
from edge_agent.serving.shm import (
    Region,
    aligned,
    decode,
    encode,
    layout,
    shm_ready,
    signature,
    spec_bytes,
)
from edge_agent.serving.worker import worker_main

log = logging.getLogger(__name__)
_CONTEXT = multiprocessing.get_context("spawn")


class WorkerCrashed(ModelError):
    """The worker process died or stopped answering."""


class IsolatedBackend:
    """A Backend whose runtime runs in a supervised child process."""

    format: ClassVar[str] = "isolated"

    def __init__(
        self,
        path: Path,
        settings: RuntimeSettings,
        *,
        crash_limit: int = 2,
        crash_window_s: float = 300.0,
        load_timeout_s: float = 120.0,
        inference_timeout_s: float = 30.0,
    ) -> None:
        self.path = path
        self._settings = settings
        self._crash_limit = crash_limit
        self._crash_window_s = crash_window_s
        self._load_timeout_s = load_timeout_s
        self._inference_timeout_s = inference_timeout_s
        self._crashes: deque[float] = deque()
        self.crash_count = 0
        self.degraded = False
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._region: Region | None = None
        self._output_bytes = 0
        """Output bytes to reserve in the region: from the specs, then the largest seen."""
        self._plan: _Plan | None = None
        self._replies: tuple[bytes, list[tuple[str, np.ndarray]]] = (b"", [])
        """The last shm reply and its output views: a repeated reply is not decoded again."""
        self._poller: Any = None
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self.delegate = BoundDelegate(name="none")
        self.runtime_format = ""
        with self._lock:
            self._start_worker()

    # -- worker lifecycle ------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start a worker; a crash while loading counts and demotes at once (it will recur)."""
        while True:
            parent, child = _CONTEXT.Pipe()
            process = _CONTEXT.Process(
                target=worker_main,
                args=(child, str(self.path), self._settings.model_dump_json()),
                name=f"edge-agent-worker-{self.path.stem}",
                daemon=True,
            )
            process.start()
            child.close()
            try:
                message = decode(self._receive(parent, process, self._load_timeout_s))
            except WorkerCrashed as crash:
                parent.close()
                self._record_crash(crash)
                self._demote(str(crash))
                continue
            if message[0] == "error":
                process.join(5)
                parent.close()
                raise _rebuild_error(message[1], message[2])
            _, self.runtime_format, self.inputs, self.outputs, delegate = message
            self.delegate = delegate
            self._process, self._conn = process, parent
            self._output_bytes = max(self._output_bytes, spec_bytes(self.outputs))
            self._region = Region(spec_bytes(self.inputs) + self._output_bytes)
            self._poller = _poller(parent, process)
            log.info("%s: worker pid %s serving on %s", self.path.name, process.pid, delegate.name)
            return

    def _demote(self, reason: str) -> None:
        bound = self.delegate.name if self.delegate.name != "none" else self._first_preference()
        if bound == "cpu" and self._first_preference() == "cpu":
            raise ModelError(
                f"{self.path}: the worker crashes even on CPU ({reason}); the model "
                "or the runtime is broken"
            )
        self._settings = demote(self._settings, self._model_format(), bound)
        self.degraded = True
        self.delegate = BoundDelegate(name="none")
        log.error(
            "%s: delegate %s crashed %d time(s); falling back to %s",
            self.path.name,
            bound,
            len(self._crashes),
            self._first_preference(),
        )

    def _first_preference(self) -> str:
        if self._model_format() == "tflite":
            return self._settings.litert.delegates[0].name
        return self._settings.onnx.providers[0].name

    def _model_format(self) -> str:
        return "tflite" if self.path.suffix.lower() == ".tflite" else "onnx"

    def _record_crash(self, crash: Exception) -> None:
        now = time.monotonic()
        self.crash_count += 1
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self._crash_window_s:
            self._crashes.popleft()
        self.degraded = True
        log.error("%s: inference worker crashed: %s", self.path.name, crash)

    def _stop_worker(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._forget_layouts()
        if self._region is not None:
            self._region.close()  # unlinked now; the worker's mapping goes with the worker
            self._region = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(encode(("close",)))
            conn.close()
        if process is not None:
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)

    def _receive(
        self, conn: Connection, process: Any, timeout_s: float, poller: Any = None
    ) -> bytes:
        """The worker's next message, undecoded; WorkerCrashed when it dies or times out first."""
        deadline = time.monotonic() + timeout_s
        poller = poller or _poller(conn, process)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                process.join(2)
                raise WorkerCrashed(f"worker did not answer within {timeout_s:.0f} s (killed)")
            ready = {fd for fd, _ in poller.poll(remaining * 1000)}
            if conn.fileno() in ready:
                break  # a reply, or the end of the pipe: recv says which
            if process.sentinel in ready and not conn.poll(0):
                process.join(2)
                raise WorkerCrashed(f"worker exited with code {process.exitcode}")
        try:
            return conn.recv_bytes()
        except (EOFError, OSError) as exc:
            process.join(2)
            raise WorkerCrashed(f"worker exited with code {process.exitcode} ({exc})") from None

    # -- Backend protocol ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id of the current worker (for diagnostics and crash tests)."""
        return self._process.pid if self._process is not None else None

    def run(
        self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True
    ) -> dict[str, np.ndarray]:
        """Run one inference in the worker; a crash restarts it and retries once."""
        waiting = time.perf_counter()
        with self._lock:
            note_queue_wait(time.perf_counter() - waiting)
            if self._conn is None:
                raise ModelError(f"{self.path}: the model was closed")
            for attempt in (1, 2):
                try:
                    return self._run_once(inputs, dequantize)
                except WorkerCrashed as crash:
                    self._record_crash(crash)
                    self._stop_worker()
                    if len(self._crashes) >= self._crash_limit:
                        self._demote(str(crash))
                        self._crashes.clear()
                    self._start_worker()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _run_once(
        self, inputs: Mapping[str, np.ndarray], dequantize: bool
    ) -> dict[str, np.ndarray]:
        assert self._conn is not None
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        plan = None
        if all(shm_ready(array) for array in arrays.values()):
            plan = self._plan_for(arrays, dequantize)
            for view, array in zip(plan.views, arrays.values(), strict=True):
                np.copyto(view, array, casting="no")
            request = plan.request
        else:
            request = encode(("run", arrays, dequantize))
        try:
            self._conn.send_bytes(request)
        except (OSError, ValueError) as exc:
            raise WorkerCrashed(f"cannot reach the worker: {exc}") from None
        raw = self._receive(self._conn, self._process, self._inference_timeout_s, self._poller)
        if raw == self._replies[0]:
            return {name: view.copy() for name, view in self._replies[1]}
        message = decode(raw)
        if message[0] == "shm":
            assert self._region is not None
            names = [slot.name for slot in message[1]]
            self._replies = (raw, list(zip(names, self._region.views(message[1]), strict=True)))
            return {name: view.copy() for name, view in self._replies[1]}
        if message[0] == "ok":
            outputs: dict[str, np.ndarray] = message[1]
            if plan is not None:  # they did not fit: make room from the next request on
                seen = sum(aligned(a.nbytes) for a in outputs.values() if shm_ready(a))
                if seen > self._output_bytes:
                    self._output_bytes = seen
                    self._plan = None
            return outputs
        raise _rebuild_error(message[1], message[2])

    def _plan_for(self, arrays: Mapping[str, np.ndarray], dequantize: bool) -> _Plan:
        """Where these inputs go and the request that says so: the last one when it fits."""
        key = (dequantize, signature(arrays))
        if self._plan is not None and self._plan.key == key:
            return self._plan
        assert self._region is not None
        slots, end = layout(arrays)
        if end + self._output_bytes > self._region.size:
            grown = max(end + self._output_bytes, self._region.size + self._region.size // 2)
            self._forget_layouts()
            self._region.close()
            self._region = Region(grown)
        region = self._region
        request = encode(("shm", region.name, region.size, slots, end, dequantize))
        self._plan = _Plan(key, region.views(slots), request)
        return self._plan

    def _forget_layouts(self) -> None:
        """Drop every cached view of the region (before it is closed or replaced)."""
        self._plan = None
        self._replies = (b"", [])

    def warm_up(self, runs: int = 1) -> None:
        """Run warm-up inferences in the worker."""
        from edge_agent.runtime.tensors import zeros_for

        for _ in range(runs):
            self.run({spec.name: zeros_for(spec) for spec in self.inputs})

    def close(self) -> None:
        """Stop the worker."""
        with self._lock:
            self._stop_worker()


class _Plan(NamedTuple):
    """A cached input layout: its key, the input views and the request message."""

    key: tuple[Any, ...]
    views: list[np.ndarray]
    request: bytes


def _poller(conn: Connection, process: Any) -> Any:
    """One poll(2) set for the worker's reply and its exit (the process sentinel)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.register(process.sentinel, select.POLLIN)
    return poller


def _rebuild_error(kind: str, message: str) -> EdgeAgentError:
    """The child's error, as the same kind of error in this process."""
    import edge_agent.errors as errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, EdgeAgentError):
        return cls(message)
    if kind in ("ValueError", "TypeError"):
        return InputError(message)
    return ModelError(f"{kind}: {message}")
