"""Which inferences to capture: the decisions, each O(1) on the hot path.

* ``random``: a Bernoulli coin per inference (:class:`~edge_agent.telemetry.sampler.Sampler`,
  one decrement per call);
* ``reservoir``: a uniform sample of exactly ``size`` inferences from every ``window_s`` window
  (Vitter's algorithm R: the n-th inference replaces a kept one with probability size/n);
* ``low_confidence``: the top score is below ``max_confidence`` or top-1 minus top-2 is below
  ``max_margin`` (near the decision threshold, where a label is worth most);
* ``class``: the predicted class, at a rate per class;
* ``drift``: at a rate while the daemon says a drift alarm is raised, up to a cap per alarm;
* ``on_demand``: the next N inferences of a model (the ``sample-now`` command).

The pure parts (:func:`class_scores`, :func:`top_two`, :func:`is_low_confidence`,
:func:`resolve_class_rates`) are unit-tested on their own.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from edge_agent.config import LowConfidenceSettings
from edge_agent.telemetry.sampler import Sampler

T = TypeVar("T")


def class_scores(outputs: Mapping[str, np.ndarray], name: str | None) -> np.ndarray | None:
    """The class-score vector of a classifier's outputs, or None if they are not one.

    Takes output ``name`` (default: the first): ``[1, C]`` or ``[C]`` with C >= 2.
    """
    array = outputs.get(name) if name is not None else next(iter(outputs.values()), None)
    if array is None:
        return None
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.shape[0] < 2 or array.dtype.kind != "f":
        return None
    return array


def top_two(scores: np.ndarray) -> tuple[int, float, float]:
    """(index of the best class, its score, the second-best score)."""
    best = int(np.argmax(scores))
    top1 = float(scores[best])
    if scores.shape[0] == 2:
        return best, top1, float(scores[1 - best])
    second = float(np.partition(scores, -2)[-2])
    return best, top1, second


def is_low_confidence(top1: float, top2: float, settings: LowConfidenceSettings) -> bool:
    """Near the decision threshold by either rule."""
    if top1 < settings.max_confidence:
        return True
    return settings.max_margin is not None and (top1 - top2) < settings.max_margin


def resolve_class_rates(
    rates: Mapping[str, float], labels: Sequence[str] | None
) -> dict[int, float]:
    """Class index -> rate; keys are labels or indices written as strings. ValueError if unknown."""
    resolved: dict[int, float] = {}
    for key, rate in rates.items():
        if labels is not None and key in labels:
            resolved[labels.index(key)] = rate
        elif key.isdigit():
            resolved[int(key)] = rate
        else:
            known = ", ".join(labels) if labels else "no labels: use class indices"
            raise ValueError(f"capture.by_class: unknown class {key!r} ({known})")
    return resolved


class Reservoir:
    """A uniform sample of ``size`` items per window (algorithm R), flushed at window end."""

    def __init__(
        self,
        size: int,
        window_s: float,
        clock: Callable[[], float],
        flush: Callable[[list[Any]], None],
        rand: random.Random | None = None,
    ) -> None:
        """``flush`` receives the kept items of each closed window (on the calling thread)."""
        self.size = size
        self.window_s = window_s
        self.clock = clock
        self.flush = flush
        self._rand = rand or random.Random()
        self._items: list[Any] = []
        self._seen = 0
        self._start = clock()
        self._lock = threading.Lock()

    def offer(self, make_item: Callable[[], T]) -> None:
        """Consider one inference; ``make_item`` (copies arrays) runs only if it is kept."""
        closed: list[Any] | None = None
        with self._lock:
            now = self.clock()
            if now - self._start >= self.window_s:
                closed, self._items, self._seen, self._start = self._items, [], 0, now
            self._seen += 1
            if len(self._items) < self.size:
                self._items.append(make_item())
            else:
                slot = int(self._rand.random() * self._seen)
                if slot < self.size:
                    self._items[slot] = make_item()
        if closed:
            self.flush(closed)

    def close_window(self) -> None:
        """Flush what the current window kept (at shutdown)."""
        with self._lock:
            closed, self._items, self._seen, self._start = self._items, [], 0, self.clock()
        if closed:
            self.flush(closed)


class Countdown:
    """Captures the next N calls (on demand) or, with a sampler, a share of calls up to N."""

    def __init__(self) -> None:
        """Inactive until :meth:`arm`."""
        self.remaining = 0
        self.sampler: Sampler | None = None
        self._lock = threading.Lock()

    def arm(self, count: int, rate: float | None = None, seed: int | None = None) -> None:
        """Capture the next ``count`` (at ``rate`` if given)."""
        with self._lock:
            self.remaining = count
            self.sampler = Sampler(rate, seed) if rate is not None else None

    def disarm(self) -> None:
        """Stop capturing."""
        with self._lock:
            self.remaining = 0

    def take(self) -> bool:
        """Hot path: True if this call is captured. One comparison while inactive."""
        if self.remaining <= 0:
            return False
        if self.sampler is not None and not self.sampler.should_sample():
            return False
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True
