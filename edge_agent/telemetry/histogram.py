"""Fixed-edge histograms: the mergeable summary behind every drift profile feature.

A drift profile (:mod:`edge_agent.telemetry.profile`) summarises each scalar feature with one
:class:`Histogram`. The reference fixes the bin edges (its own quantiles,
:func:`reference_edges`), every window reuses them, so two histograms of one reference merge by
adding counts, sums and extremes, and the drift statistics (:mod:`.drift_stats`) compare them
bin by bin without the raw data.

JSON form (inside a profile, ``format_version`` 1)::

    {"edges": [e0, ..., eB],                  # B interior bins, fixed by the reference
     "counts": [under, b1, ..., bB, over],    # under: x < e0, over: x > eB
     "sums": [...same length...],             # per-bin sum of values (for Wasserstein)
     "sum": s, "sum_sq": s2, "min": m, "max": M, "nan": k}

Interior bins are ``[e_i, e_{i+1})`` except the last, which includes ``eB``. Malformed JSON
raises :class:`edge_agent.errors.ModelError` naming where it sits in the profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import ModelError

__all__ = ["Histogram", "bin_index", "reference_edges"]


@dataclass
class Histogram:
    """A fixed-edge histogram with under/over-flow bins, per-bin sums and moments."""

    edges: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    total: float = 0.0
    total_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    nan: int = 0

    @classmethod
    def empty(cls, edges: np.ndarray) -> Histogram:
        """A histogram with these edges and nothing in it."""
        n = len(edges) + 1
        return cls(np.asarray(edges, dtype=np.float64), np.zeros(n, np.int64), np.zeros(n))

    @classmethod
    def from_values(cls, values: np.ndarray, edges: np.ndarray) -> Histogram:
        """Histogram of ``values`` (1-D) over ``edges``; NaN/inf are counted, not binned."""
        hist = cls.empty(edges)
        hist.add(values)
        return hist

    @property
    def count(self) -> int:
        """Number of finite values recorded."""
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Record a batch of values (vectorised; NaN/inf only increment ``nan``)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(values)
        self.nan += int(values.size - finite.sum())
        values = values[finite]
        if values.size == 0:
            return
        index = bin_index(values, self.edges)
        n = len(self.counts)
        self.counts += np.bincount(index, minlength=n).astype(np.int64)
        self.sums += np.bincount(index, weights=values, minlength=n)
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def merged(self, other: Histogram) -> Histogram:
        """The histogram of both inputs together (edges must match)."""
        if not np.array_equal(self.edges, other.edges):
            raise ModelError(
                "cannot merge histograms with different bin edges: the profiles "
                "were built against different references"
            )
        return Histogram(
            self.edges,
            self.counts + other.counts,
            self.sums + other.sums,
            self.total + other.total,
            self.total_sq + other.total_sq,
            min(self.min, other.min),
            max(self.max, other.max),
            self.nan + other.nan,
        )

    def mean(self) -> float | None:
        """Mean of the finite values, None when empty."""
        n = self.count
        return self.total / n if n else None

    def std(self) -> float | None:
        """Population standard deviation of the finite values, None when empty."""
        n = self.count
        if not n:
            return None
        return math.sqrt(max(self.total_sq / n - (self.total / n) ** 2, 0.0))

    def quantile(self, q: float) -> float | None:
        """Approximate quantile: linear inside the bin, bin edges / extremes as bounds."""
        n = self.count
        if not n:
            return None
        lows = np.concatenate(([self.min], self.edges))
        highs = np.concatenate((self.edges, [self.max]))
        cumulative = np.cumsum(self.counts)
        target = q * n
        i = int(np.searchsorted(cumulative, target, side="left"))
        i = min(i, len(self.counts) - 1)
        before = cumulative[i] - self.counts[i]
        inside = (target - before) / self.counts[i] if self.counts[i] else 0.0
        low, high = float(lows[i]), float(highs[i])
        low, high = max(low, self.min), min(high, self.max)
        return low + (high - low) * float(np.clip(inside, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see the module docstring)."""
        return {
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "sums": [float(s) for s in self.sums],
            "sum": self.total,
            "sum_sq": self.total_sq,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "nan": self.nan,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Histogram:
        """Parse the JSON form; ModelError naming ``where`` if it is malformed."""
        try:
            edges = np.asarray(data["edges"], dtype=np.float64)
            counts = np.asarray(data["counts"], dtype=np.int64)
            sums = np.asarray(data["sums"], dtype=np.float64)
            hist = cls(
                edges,
                counts,
                sums,
                float(data["sum"]),
                float(data["sum_sq"]),
                math.inf if data["min"] is None else float(data["min"]),
                -math.inf if data["max"] is None else float(data["max"]),
                int(data["nan"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed drift profile at {where}: {exc!r}") from exc
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ModelError(
                f"malformed drift profile at {where}: `edges` must be at least two "
                "strictly increasing numbers"
            )
        if counts.shape != (len(edges) + 1,) or sums.shape != counts.shape or counts.min() < 0:
            raise ModelError(
                f"malformed drift profile at {where}: `counts` and `sums` must have "
                f"len(edges)+1 = {len(edges) + 1} entries, counts non-negative"
            )
        return hist


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index into ``counts``: 0 below ``edges[0]``, B+1 above ``edges[-1]``, else 1..B."""
    index = np.searchsorted(edges, values, side="right")
    return np.where(values == edges[-1], len(edges) - 1, index)


def reference_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-frequency bin edges (reference quantiles), deduplicated; works for constants."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:  # constant feature: one narrow bin around the value
        v = float(edges[0])
        width = max(abs(v) * 1e-6, 1e-9)
        edges = np.array([v - width, v + width])
    return edges
