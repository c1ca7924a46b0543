"""Dynamic batching: concurrent requests to a model with an open batch dimension run as one.

Modelled on Triton's dynamic batcher. Requests wait in a FIFO queue; when the backend is free,
the oldest request and every later one of the same signature (dtypes, dequantize flag and all
dimensions but the first) form a batch of at most ``max_batch_size`` rows. If the batch is not
full, it waits up to ``max_queue_delay_ms`` for more (0, the default, never waits: it takes
what queued up while the backend was busy, which costs an idle model nothing). The rows are
concatenated along axis 0, run once, and each request gets its rows of every output back.

No thread of its own: the first waiting request whose batch is due runs it (leader/follower),
so an idle model pays one lock round trip. A batch that fails, or whose outputs do not have
one row per input row, is run again request by request: every request gets the answer, or
the error, it would have had alone. Requests of different signatures are never merged; they
are served in order, each in its own batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edge_agent.runtime.base import DYNAMIC, Backend, BoundDelegate, TensorSpec
from edge_agent.runtime.timing import note_queue_wait, take_queue_wait


def batchable(inputs: tuple[TensorSpec, ...]) -> bool:
    """Whether every input has an open first (batch) dimension."""
    return bool(inputs) and all(spec.shape and spec.shape[0] == DYNAMIC for spec in inputs)


class _Request:
    __slots__ = ("dequantize", "done", "error", "inputs", "key", "outputs", "queued", "rows")

    def __init__(self, inputs: Mapping[str, np.ndarray], dequantize: bool) -> None:
        self.inputs = {name: np.asarray(value) for name, value in inputs.items()}
        self.dequantize = dequantize
        shapes = [a.shape for a in self.inputs.values()]
        leading = {shape[0] for shape in shapes if shape}
        self.rows = leading.pop() if len(leading) == 1 and all(shapes) else 0
        self.key: Any = (
            (dequantize, tuple((n, a.dtype.str, a.shape[1:]) for n, a in self.inputs.items()))
            if self.rows
            else None  # no common batch dimension: runs alone
        )
        self.queued = time.perf_counter()
        self.done = False
        self.outputs: dict[str, np.ndarray] = {}
        self.error: BaseException | None = None


class BatchingBackend:
    """A Backend that merges concurrent requests into batches for the backend it wraps."""

    format: ClassVar[str] = "batched"
    path: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    delegate: BoundDelegate

    def __init__(self, backend: Backend, max_batch_size: int, max_queue_delay_s: float) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.batches = 0
        """Runs of the wrapped backend (one per batch, plus one per request of a split batch)."""
        self._queue: list[_Request] = []
        self._busy = False
        self._cond = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        """Everything else (inputs, delegate, runtime_format, degraded, ...) is the backend's."""
        return getattr(self.__dict__["backend"], name)

    @property
    def runtime_format(self) -> str:
        """The wrapped backend's runtime (``tflite`` or ``onnx``)."""
        return getattr(self.backend, "runtime_format", "") or self.backend.format

    def run(
        self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True
    ) -> dict[str, np.ndarray]:
        """Run ``inputs``, batched with whatever else is waiting (see the module docstring)."""
        request = _Request(inputs, dequantize)
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
            while not request.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                try:
                    batch = self._gather()
                    self._cond.release()
                    try:
                        self._execute(batch)
                    finally:
                        self._cond.acquire()
                finally:
                    self._busy = False
                    self._cond.notify_all()
        note_queue_wait(request.queued)  # seconds before its batch ran, plus the backend's own
        if request.error is not None:
            raise request.error
        return request.outputs

    def _gather(self) -> list[_Request]:
        """The next batch: the oldest request and compatible later ones (lock held)."""
        head = self._queue[0]
        if head.key is not None and self.max_queue_delay_s > 0:
            deadline = head.queued + self.max_queue_delay_s
            while self._rows(head) < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        batch = [head]
        rows = head.rows
        if head.key is not None:
            for request in self._queue[1:]:
                if request.key == head.key and rows + request.rows <= self.max_batch_size:
                    batch.append(request)
                    rows += request.rows
        taken = set(map(id, batch))
        self._queue = [r for r in self._queue if id(r) not in taken]
        return batch

    def _rows(self, head: _Request) -> int:
        return sum(r.rows for r in self._queue if r.key == head.key)

    def _execute(self, batch: list[_Request]) -> None:
        """Run ``batch`` (lock released); every request in it ends done."""
        started = time.perf_counter()
        for request in batch:
            request.queued = started - request.queued  # from now on: seconds it waited
        try:
            if len(batch) > 1 and self._run_merged(batch):
                return
            for request in batch:
                self._run_alone(request)
        finally:
            for request in batch:
                request.done = True

    def _run_merged(self, batch: list[_Request]) -> bool:
        head = batch[0]
        merged = {name: np.concatenate([r.inputs[name] for r in batch]) for name in head.inputs}
        total = sum(r.rows for r in batch)
        self.batches += 1
        try:
            outputs = self.backend.run(merged, dequantize=head.dequantize)
        except Exception:
            return False  # each request alone gets its own answer or error
        finally:
            inner_wait = take_queue_wait()
        if not all(a.ndim and a.shape[0] == total for a in outputs.values()):
            return False
        start = 0
        for request in batch:
            end = start + request.rows
            request.outputs = {name: array[start:end] for name, array in outputs.items()}
            request.queued += inner_wait
            start = end
        return True

    def _run_alone(self, request: _Request) -> None:
        self.batches += 1
        try:
            request.outputs = self.backend.run(request.inputs, dequantize=request.dequantize)
        except Exception as exc:
            request.error = exc
        request.queued += take_queue_wait()

    def warm_up(self, runs: int = 1) -> None:
        """Warm the wrapped backend up."""
        self.backend.warm_up(runs)

    def close(self) -> None:
        """Close the wrapped backend."""
        self.backend.close()
