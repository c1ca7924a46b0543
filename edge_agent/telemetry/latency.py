"""Latency and load telemetry per (model, delegate), on mergeable DDSketches.

Why DDSketch (the ``ddsketch`` package, Datadog's reference implementation) rather than an HDR
histogram: it needs no value range up front (a model that takes 40 us on a TPU and 4 s on a
throttled CPU fits the same sketch), its quantiles carry a *relative* error guarantee
(``relative_accuracy``: p99 within 1%), sketches with the same accuracy merge exactly (the
monitor adds devices and periods together), and it is pure Python with one tiny dependency
(``six``), so it installs on any Pi without a compiler. ``add`` costs about 0.3-0.5 us.

Hot path (:meth:`LatencyRecorder.record`): one dict lookup, one lock, one sketch insert and a
few integer increments. :meth:`LatencyRecorder.collect` swaps in fresh statistics and returns
the closed period as a JSON-able report (percentiles, throughput, errors, queue depth, dropped
frames and the serialised sketch for merging).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def sketch_to_dict(sketch: BaseDDSketch) -> dict[str, Any]:
    """A DDSketch as JSON: mapping accuracy and the non-empty bins (key -> count)."""
    store = sketch._store
    bins = {str(store.offset + i): c for i, c in enumerate(store.bins) if c}
    return {
        "relative_accuracy": sketch._mapping.relative_accuracy,
        "bins": bins,
        "zero_count": sketch._zero_count,
        "count": sketch.count,
        "sum": sketch.sum,
        "min": sketch._min if sketch.count else None,
        "max": sketch._max if sketch.count else None,
    }


def sketch_from_dict(data: Mapping[str, Any]) -> BaseDDSketch:
    """Rebuild a DDSketch from :func:`sketch_to_dict` (for merging on the monitor side).

    Raises ValueError for a malformed payload. ddsketch has no public setter for sum / min /
    max (its own protobuf form drops them), so those three are restored on the attributes.
    """
    try:
        accuracy = float(data["relative_accuracy"])
        store = DenseStore()
        for key, count in dict(data["bins"]).items():
            if float(count) < 0:
                raise ValueError(f"negative bin count {count}")
            store.add(int(key), float(count))
        sketch = BaseDDSketch(
            LogarithmicMapping(accuracy), store, DenseStore(), float(data["zero_count"])
        )
        sketch._sum = float(data["sum"])
        sketch._min = float("inf") if data["min"] is None else float(data["min"])
        sketch._max = float("-inf") if data["max"] is None else float(data["max"])
        return sketch
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed latency sketch: {exc!r}") from exc


@dataclass
class _Period:
    sketch: DDSketch
    errors: int = 0
    dropped_frames: int = 0
    max_queue_depth: int = 0
    last_queue_depth: int = 0


@dataclass
class LatencyRecorder:
    """Latency sketches and load counters per (model, delegate), reset each report period."""

    relative_accuracy: float = 0.01
    clock: Callable[[], float] = time.monotonic
    _periods: dict[tuple[str, str], _Period] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _period_start: float = 0.0

    def __post_init__(self) -> None:
        """Start the first period now."""
        self._period_start = self.clock()

    def _period(self, key: tuple[str, str]) -> _Period:
        period = self._periods.get(key)
        if period is None:
            period = self._periods[key] = _Period(DDSketch(self.relative_accuracy))
        return period

    def record(self, model: str, delegate: str, seconds: float, ok: bool = True) -> None:
        """Hot path: one inference took ``seconds`` (``ok=False``: it raised)."""
        with self._lock:
            period = self._periods.get((model, delegate)) or self._period((model, delegate))
            if ok:
                period.sketch.add(seconds)
            else:
                period.errors += 1

    def frame_dropped(self, model: str, delegate: str, count: int = 1) -> None:
        """A source dropped frames because inference could not keep up."""
        with self._lock:
            self._period((model, delegate)).dropped_frames += count

    def queue_depth(self, model: str, delegate: str, depth: int) -> None:
        """Current depth of the inference queue (keeps last and max of the period)."""
        with self._lock:
            period = self._period((model, delegate))
            period.last_queue_depth = depth
            period.max_queue_depth = max(period.max_queue_depth, depth)

    def collect(self) -> dict[str, Any]:
        """Close the period: a JSON-able report, and start a new period."""
        with self._lock:
            periods, self._periods = self._periods, {}
            start, now = self._period_start, self.clock()
            self._period_start = now
        elapsed = max(now - start, 1e-9)
        models = []
        for (model, delegate), p in sorted(periods.items()):
            count = int(p.sketch.count)
            models.append(
                {
                    "model": model,
                    "delegate": delegate,
                    "count": count,
                    "errors": p.errors,
                    "throughput_per_s": count / elapsed,
                    "dropped_frames": p.dropped_frames,
                    "queue_depth": p.last_queue_depth,
                    "max_queue_depth": p.max_queue_depth,
                    "latency_ms": {
                        **{
                            f"p{round(q * 100)}": _ms(p.sketch.get_quantile_value(q))
                            for q in QUANTILES
                        },
                        "mean": _ms(p.sketch.avg) if count else None,
                        "max": _ms(p.sketch._max) if count else None,
                    },
                    "sketch": sketch_to_dict(p.sketch),
                }
            )
        return {"period_s": elapsed, "models": models}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def energy_per_inference_j(
    power_w: float | None, inferences: int, seconds: float, busy_fraction: float = 1.0
) -> float | None:
    """Energy per inference (J) = average power x time / inferences; None if power unknown.

    ``busy_fraction`` lets a caller attribute only part of the device's power to inference
    (default: all of it, which is an upper bound on a device that does nothing else).
    """
    if power_w is None or inferences <= 0 or seconds <= 0:
        return None
    return power_w * seconds * busy_fraction / inferences
