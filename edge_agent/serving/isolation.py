"""Inference in a supervised worker process, so a native crash in a delegate is survivable.

Edge TPU and GPU delegates do segfault. With isolation the runtime lives in a child process
(multiprocessing, spawn start method: no inherited threads or locks); the agent talks to it
over a pipe. When the child dies (crash, OOM kill) or hangs past the inference timeout, it is
restarted and the request retried once; after ``crash_limit`` crashes within ``crash_window_s``
the next worker binds the next delegate down the preference list (``delegates.demote``) and the
backend reports itself degraded. The cost is one pickle round trip per inference
(``benchmarks/isolation.py`` measures it).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.errors import EdgeAgentError, InputError, ModelError
from edge_agent.runtime.base import BoundDelegate, TensorSpec
from edge_agent.runtime.delegates import demote
from edge_agent.runtime.timing import note_queue_wait

log = logging.getLogger(__name__)
_CONTEXT = multiprocessing.get_context("spawn")


def _worker_main(conn: Connection, path: str, settings_json: str) -> None:
    """The child: load the model, then answer run requests until told to stop."""
    from edge_agent.runtime import load_model

    try:
        backend = load_model(Path(path), RuntimeSettings.model_validate_json(settings_json))
    except Exception as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready", backend.format, backend.inputs, backend.outputs, backend.delegate))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request[0] == "close":
            break
        _, inputs, dequantize = request
        try:
            conn.send(("ok", backend.run(inputs, dequantize=dequantize)))
        except Exception as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
    backend.close()


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
                target=_worker_main,
                args=(child, str(self.path), self._settings.model_dump_json()),
                name=f"edge-agent-worker-{self.path.stem}",
                daemon=True,
            )
            process.start()
            child.close()
            try:
                message = self._receive(parent, process, self._load_timeout_s)
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
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
            conn.close()
        if process is not None:
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)

    def _receive(self, conn: Connection, process: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not conn.poll(0.05):
            if not process.is_alive():
                raise WorkerCrashed(f"worker exited with code {process.exitcode}")
            if time.monotonic() > deadline:
                process.kill()
                process.join(2)
                raise WorkerCrashed(f"worker did not answer within {timeout_s:.0f} s (killed)")
        try:
            return conn.recv()
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
        try:
            self._conn.send(("run", dict(inputs), dequantize))
        except (OSError, ValueError) as exc:
            raise WorkerCrashed(f"cannot reach the worker: {exc}") from None
        message = self._receive(self._conn, self._process, self._inference_timeout_s)
        if message[0] == "ok":
            outputs: dict[str, np.ndarray] = message[1]
            return outputs
        raise _rebuild_error(message[1], message[2])

    def warm_up(self, runs: int = 1) -> None:
        """Run warm-up inferences in the worker."""
        from edge_agent.runtime.tensors import zeros_for

        for _ in range(runs):
            self.run({spec.name: zeros_for(spec) for spec in self.inputs})

    def close(self) -> None:
        """Stop the worker."""
        with self._lock:
            self._stop_worker()


def _rebuild_error(kind: str, message: str) -> EdgeAgentError:
    """The child's error, as the same kind of error in this process."""
    import edge_agent.errors as errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, EdgeAgentError):
        return cls(message)
    if kind in ("ValueError", "TypeError"):
        return InputError(message)
    return ModelError(f"{kind}: {message}")
