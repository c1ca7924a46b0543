"""A named model with an active version that can be replaced without failing any request.

Each request takes the active version under a short lock and counts itself in; a swap replaces
the active version for new requests at once, and the old version is closed only when its last
in-flight request has finished. Observers see every (inputs, result) pair after the fact, for
telemetry, sampling and shadow checks; they must be O(1) and must not raise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime import Backend, TensorSpec
from edge_agent.runtime.timing import take_queue_wait

log = logging.getLogger(__name__)


@dataclass
class LoadedVersion:
    """One loaded version of a model and the requests currently running on it."""

    name: str
    version: str
    backend: Backend
    path: Path
    manifest: Mapping[str, Any] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    _inflight: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Input specs of this version."""
        return self.backend.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Output specs of this version."""
        return self.backend.outputs

    def drain_and_close(self, timeout_s: float = 30.0) -> bool:
        """Wait for in-flight requests to finish (up to ``timeout_s``), then close the backend.

        Returns False when requests were still running at the timeout (closed anyway).
        """
        with self._idle:
            drained = self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout_s)
            self._closed = True
        self.backend.close()
        return drained


@dataclass(frozen=True)
class InferenceResult:
    """What one request got back, and from which version and delegate."""

    outputs: dict[str, np.ndarray]
    version: str
    delegate: str
    latency_s: float
    """The whole request in the serving layer: queue plus compute."""
    queue_s: float = 0.0
    """Of ``latency_s``, the time spent waiting for a backend busy with other requests."""


Observer = Callable[[Mapping[str, np.ndarray], InferenceResult], None]
ErrorObserver = Callable[[str, BaseException], None]


class ServedModel:
    """A named model; ``run`` is safe from many threads and across swaps."""

    def __init__(self, name: str, first: LoadedVersion) -> None:
        self.name = name
        self._active = first
        self._lock = threading.Lock()
        self._observers: list[Observer] = []
        self._error_observers: list[ErrorObserver] = []

    @property
    def active(self) -> LoadedVersion:
        """The version new requests go to."""
        return self._active

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(inputs, result)`` after every successful request."""
        self._observers.append(observer)

    def add_error_observer(self, observer: ErrorObserver) -> None:
        """Call ``observer(version, error)`` after every failed request."""
        self._error_observers.append(observer)

    def run(self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True) -> InferenceResult:
        """Run one inference on the active version (see ``Backend.run`` for the errors)."""
        version = self._enter()
        start = time.perf_counter()
        try:
            outputs = version.backend.run(inputs, dequantize=dequantize)
        except Exception as exc:
            for error_observer in self._error_observers:
                _call_safely(error_observer, version.version, exc)
            raise
        finally:
            self._exit(version)
            queue_s = take_queue_wait()  # taken on failures too, so it never leaks to the next
        result = InferenceResult(
            outputs,
            version.version,
            version.backend.delegate.name,
            time.perf_counter() - start,
            queue_s,
        )
        for observer in self._observers:
            _call_safely(observer, inputs, result)
        return result

    def swap(self, new: LoadedVersion) -> LoadedVersion:
        """Make ``new`` the active version; returns the old one, still open.

        The caller decides when to ``drain_and_close`` the old version (or keeps it for a
        rollback). Requests already running on it finish there.
        """
        if new.name != self.name:
            raise ModelError(f"cannot swap '{new.name}' into the slot of '{self.name}'")
        if new._closed:
            raise ModelError(f"{self.name}: version {new.version} was closed; load it again")
        with self._lock:
            old, self._active = self._active, new
        log.info("%s: now serving version %s (was %s)", self.name, new.version, old.version)
        return old

    def _enter(self) -> LoadedVersion:
        with self._lock:
            version = self._active
            with version._idle:
                version._inflight += 1
        return version

    @staticmethod
    def _exit(version: LoadedVersion) -> None:
        with version._idle:
            version._inflight -= 1
            if version._inflight == 0:
                version._idle.notify_all()


class ModelRegistry:
    """The models this process serves, by name."""

    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def add(self, model: ServedModel) -> None:
        """Serve ``model`` under its name (a name can be served once)."""
        with self._lock:
            if model.name in self._models:
                raise ModelError(f"a model named '{model.name}' is already served")
            self._models[model.name] = model

    def remove(self, name: str) -> ServedModel | None:
        """Stop serving ``name``; returns the model (its versions are still open)."""
        with self._lock:
            return self._models.pop(name, None)

    def get(self, name: str) -> ServedModel | None:
        """The model served under ``name``, if any."""
        return self._models.get(name)

    def names(self) -> list[str]:
        """Names of all served models, sorted."""
        return sorted(self._models)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)


def _call_safely(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # an observer must never fail a request
        log.exception("observer %r failed", callback)
