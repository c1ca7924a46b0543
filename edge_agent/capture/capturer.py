"""Sampled capture: a ``ServedModel`` observer that decides on the hot path, writes off it.

:meth:`SampleCapture.attach` registers an observer on a served model. Per inference the
observer runs the configured strategies (:mod:`edge_agent.capture.strategies`): a countdown
or two, a sampler decrement, and only when a confidence/class strategy is on, an argmax over
the class scores. Only a captured inference costs more: its arrays are copied and put on a
bounded queue (full: dropped and counted, inference never waits). A writer thread compresses
and stores them (:class:`~edge_agent.capture.store.SampleStore`).

The daemon calls :meth:`SampleCapture.drift_alarm` when a drift alarm of a model is raised or
cleared, and :meth:`SampleCapture.capture_now` for the ``sample-now`` command.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.capture.store import Sample, SampleStore
from edge_agent.capture.strategies import (
    Countdown,
    Reservoir,
    class_scores,
    is_low_confidence,
    resolve_class_rates,
    top_two,
)
from edge_agent.config import CaptureSettings
from edge_agent.errors import ConfigError, SampleStoreError
from edge_agent.serving import InferenceResult, ServedModel
from edge_agent.telemetry.sampler import Sampler

log = logging.getLogger(__name__)


@dataclass
class _ModelState:
    name: str
    random: Sampler | None
    reservoir: Reservoir | None
    low_confidence_sampler: Sampler | None
    class_samplers: dict[int, Sampler]
    needs_scores: bool
    drift: Countdown = field(default_factory=Countdown)
    demand: Countdown = field(default_factory=Countdown)
    captured: dict[str, int] = field(default_factory=dict)


class SampleCapture:
    """Captures inferences of attached models into a sample store."""

    def __init__(
        self,
        settings: CaptureSettings,
        store: SampleStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        """Start the writer thread."""
        self.settings = settings
        self.store = store
        self.clock = clock
        self._seed = seed
        self._models: dict[str, _ModelState] = {}
        self._queue: queue.Queue[Sample | None] = queue.Queue(settings.queue_size)
        self.dropped_queue = 0
        self.write_errors = 0
        self.written = 0
        self.last_error = ""
        self._writer = threading.Thread(target=self._write_loop, name="capture-writer", daemon=True)
        self._writer.start()

    # -- wiring ----------------------------------------------------------------------------

    def attach(self, served: ServedModel, labels: Sequence[str] | None = None) -> bool:
        """Observe ``served`` (unless ``capture.models`` leaves it out); True if attached.

        ``labels`` (default: the active version's manifest labels) name the classes of
        ``by_class``; ConfigError for a class that neither a label nor an index names.
        """
        if self.settings.models and served.name not in self.settings.models:
            return False
        s = self.settings
        if labels is None:
            labels = (served.active.manifest or {}).get("labels")
        class_samplers: dict[int, Sampler] = {}
        if s.by_class is not None:
            try:
                rates = resolve_class_rates(s.by_class.rates, labels)
            except ValueError as exc:
                raise ConfigError(f"model {served.name}: {exc}") from None
            class_samplers = {i: Sampler(r, self._seed) for i, r in rates.items()}
        reservoir = None
        if s.reservoir is not None:
            reservoir = Reservoir(
                s.reservoir.size, s.reservoir.window_s, self.clock, self._flush_reservoir
            )
        low = s.low_confidence
        state = _ModelState(
            name=served.name,
            random=Sampler(s.random_rate, self._seed) if s.random_rate else None,
            reservoir=reservoir,
            low_confidence_sampler=(
                Sampler(low.rate, self._seed) if low is not None and low.rate < 1.0 else None
            ),
            class_samplers=class_samplers,
            needs_scores=low is not None or bool(class_samplers),
        )
        self._models[served.name] = state
        served.add_observer(lambda inputs, result: self.observe(state, inputs, result))
        return True

    def drift_alarm(self, model: str, raised: bool) -> None:
        """A drift alarm of ``model`` was raised (capture at the drift rate) or cleared."""
        state = self._models.get(model)
        if state is None or self.settings.on_drift is None:
            return
        if raised:
            state.drift.arm(
                self.settings.on_drift.max_samples, self.settings.on_drift.rate, self._seed
            )
        else:
            state.drift.disarm()

    def capture_now(self, count: int, model: str | None = None) -> int:
        """Capture the next ``count`` inferences of ``model`` (or of every attached model).

        Returns how many were granted per model (capped by ``on_demand_max``).
        """
        granted = max(0, min(count, self.settings.on_demand_max))
        targets = (
            [self._models[model]]
            if model in self._models
            else (list(self._models.values()) if model is None else [])
        )
        for state in targets:
            state.demand.arm(granted)
        return granted if targets else 0

    # -- hot path --------------------------------------------------------------------------

    def observe(
        self, state: _ModelState, inputs: Mapping[str, np.ndarray], result: InferenceResult
    ) -> None:
        """The observer: decide, and queue a copy if captured. Never raises, never blocks."""
        strategy = None
        if state.demand.take():
            strategy = "on_demand"
        elif state.drift.take():
            strategy = "drift"
        elif state.random is not None and state.random.should_sample():
            strategy = "random"
        elif state.needs_scores:
            strategy = self._score_strategy(state, result)
        if state.reservoir is not None:
            state.reservoir.offer(lambda: self._sample(state, inputs, result, "reservoir"))
        if strategy is not None:
            self._enqueue(self._sample(state, inputs, result, strategy))

    def _score_strategy(self, state: _ModelState, result: InferenceResult) -> str | None:
        scores = class_scores(result.outputs, self.settings.scores_output)
        if scores is None:
            return None
        best, top1, top2 = top_two(scores)
        low = self.settings.low_confidence
        if (
            low is not None
            and is_low_confidence(top1, top2, low)
            and (
                state.low_confidence_sampler is None or state.low_confidence_sampler.should_sample()
            )
        ):
            return "low_confidence"
        sampler = state.class_samplers.get(best)
        if sampler is not None and sampler.should_sample():
            return "class"
        return None

    @staticmethod
    def _sample(
        state: _ModelState, inputs: Mapping[str, np.ndarray], result: InferenceResult, strategy: str
    ) -> Sample:
        return Sample(
            model=state.name,
            version=result.version,
            delegate=result.delegate,
            latency_s=result.latency_s,
            strategy=strategy,
            inputs={k: np.array(v, copy=True) for k, v in inputs.items()},
            outputs={k: np.array(v, copy=True) for k, v in result.outputs.items()},
        )

    def _enqueue(self, sample: Sample) -> None:
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            self.dropped_queue += 1

    def _flush_reservoir(self, samples: list[Any]) -> None:
        for sample in samples:
            self._enqueue(sample)

    # -- writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        last_sweep = self.clock()
        while True:
            try:
                sample = self._queue.get(timeout=1.0)
            except queue.Empty:
                sample = None
                if self.clock() - last_sweep >= 60.0:
                    last_sweep = self.clock()
                    self._sweep()
                continue
            try:
                if sample is None:
                    return
                self._write(sample)
            finally:
                self._queue.task_done()

    def _write(self, sample: Sample) -> None:
        scores = class_scores(sample.outputs, self.settings.scores_output)
        if scores is not None:
            sample.prediction, sample.confidence, _ = top_two(scores)
        try:
            self.store.add(sample)
            self.written += 1
            state = self._models.get(sample.model)
            if state is not None:
                state.captured[sample.strategy] = state.captured.get(sample.strategy, 0) + 1
        except SampleStoreError as exc:
            self.write_errors += 1
            self.last_error = str(exc)
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.warning("capture: %s (%d failed writes)", exc, self.write_errors)
        except Exception:
            self.write_errors += 1
            log.exception("capture: storing a sample failed")

    def _sweep(self) -> None:
        try:
            self.store.enforce_limits()
        except Exception as exc:
            self.last_error = f"age sweep failed: {exc}"

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued sample is written; True if done in time (tests, SIGTERM)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            if not self._writer.is_alive():
                break
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    def stats(self) -> dict[str, Any]:
        """Per-model captures by strategy, queue drops, write errors and the store's stats."""
        return {
            "models": {name: dict(s.captured) for name, s in self._models.items()},
            "written": self.written,
            "dropped_queue": self.dropped_queue,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
            "store": self.store.stats(),
        }

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush reservoirs and the queue, stop the writer (the store stays open)."""
        for state in self._models.values():
            if state.reservoir is not None:
                state.reservoir.close_window()
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("capture: writer queue still full at shutdown")
        self._writer.join(timeout_s)
