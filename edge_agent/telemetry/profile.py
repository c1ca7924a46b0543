"""Drift profiles: the reference a model ships with, and the window profiles a device sends.

A *profile* summarises a batch of model inputs and outputs in a small, mergeable, versioned,
JSON-serialisable form. The same format serves two roles:

* the **reference profile**, built once from training / calibration data
  (``edge-agent convert profile MODEL --data DIR`` calls :func:`build_profile` without a
  ``reference``); its bin edges are the reference's own quantiles, so each bin holds about the
  same share of the reference;
* a **window profile**, built on the device from one window of live traffic with
  ``build_profile(..., reference=ref)``; it reuses the reference's bin edges, value range and
  feature extraction, so it is directly comparable, and ``merge(a, b)`` of two windows is exactly
  the profile of their union (counts, sums and extremes add up). That is what goes over the
  wire: the monitor can aggregate windows across time and devices without the raw data.

What is profiled (every *feature* is a scalar per sample, summarised by a histogram):

* **tabular inputs** (``[N, F]`` or ``[N]``): each column is a feature (``f0``, ``f1``, ... or
  the names given);
* **image inputs** (``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``): the frame is first
  block-averaged down to at most ``downsample`` pixels a side, then per-channel mean and standard
  deviation (``ch0_mean``, ``ch0_std``, ...), ``brightness`` (mean luma), ``sharpness``
  (variance of the 4-neighbour Laplacian of luma) and a coarse ``grid``x``grid`` layout of luma
  (``grid_r_c``, mean luma per cell; catches rotation / framing changes that leave global
  statistics alone);
* **outputs**: for ``[N, K]`` class scores, the predicted-class counts and a ``confidence``
  histogram (max probability; scores that are not probabilities are soft-maxed first); for
  ``[N]`` integers, the class counts; for ``[N]`` floats, an ``output`` feature histogram;
* **data quality** on the raw input: samples with NaN/inf, with values outside the reference
  value range, and constant samples (every value equal: a blank or frozen frame).

Histogram layout (the JSON form, ``format_version`` 1)::

    {"edges": [e0, ..., eB],                  # B interior bins, fixed by the reference
     "counts": [under, b1, ..., bB, over],    # under: x < e0, over: x > eB
     "sums": [...same length...],             # per-bin sum of values (for Wasserstein)
     "sum": s, "sum_sq": s2, "min": m, "max": M, "nan": k}

Interior bins are ``[e_i, e_{i+1})`` except the last, which includes ``eB``.

API: :func:`build_profile`, :func:`merge`, :meth:`Profile.to_dict` / :meth:`Profile.from_dict`,
:func:`save_profile` / :func:`load_profile`. Malformed profiles raise
:class:`edge_agent.errors.ModelError` naming the bad key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge_agent.errors import ModelError

FORMAT_VERSION = 1
"""Bumped whenever a reader of the previous version could misread the new one."""

Layout = Literal["auto", "features", "nhwc", "nchw", "hw"]

DEFAULT_BINS = 10
DEFAULT_DOWNSAMPLE = 64
DEFAULT_GRID = 4
_LUMA = np.array([0.299, 0.587, 0.114])
CONFIDENCE_EDGES = np.array([0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0])
"""Fixed confidence bins: model confidence piles up near 1, where reference quantiles would
make bins so narrow that harmless calibration noise (0.9999 vs 0.99999) reads as drift."""


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


@dataclass
class Quality:
    """Data-quality counters of the raw inputs (all additive)."""

    samples: int = 0
    nan_samples: int = 0
    out_of_range_samples: int = 0
    constant_samples: int = 0

    def merged(self, other: Quality) -> Quality:
        """Sum of both."""
        return Quality(
            self.samples + other.samples,
            self.nan_samples + other.nan_samples,
            self.out_of_range_samples + other.out_of_range_samples,
            self.constant_samples + other.constant_samples,
        )


@dataclass
class Profile:
    """A reference or window profile (see the module docstring)."""

    kind: Literal["reference", "window"]
    layout: Layout
    features: dict[str, Histogram]
    quality: Quality
    value_range: tuple[float, float] | None
    class_counts: np.ndarray | None = None
    confidence: Histogram | None = None
    labels: list[str] | None = None
    image: dict[str, int] = field(default_factory=dict)
    """Image extraction parameters (``downsample``, ``grid``), empty for tabular inputs."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form: ``model``, ``start`` / ``end`` (unix seconds), ``windows`` merged, ..."""
    reference_digest: str = ""
    """Digest of the reference's edges; windows carry their reference's, merge checks it."""

    @property
    def samples(self) -> int:
        """Number of samples profiled."""
        return self.quality.samples

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, with ``format_version``."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "layout": self.layout,
            "reference_digest": self.reference_digest,
            "value_range": list(self.value_range) if self.value_range else None,
            "image": dict(self.image),
            "features": {name: h.to_dict() for name, h in self.features.items()},
            "quality": {
                "samples": self.quality.samples,
                "nan_samples": self.quality.nan_samples,
                "out_of_range_samples": self.quality.out_of_range_samples,
                "constant_samples": self.quality.constant_samples,
            },
            "prediction": None
            if self.class_counts is None and self.confidence is None
            else {
                "class_counts": None
                if self.class_counts is None
                else [int(c) for c in self.class_counts],
                "labels": self.labels,
                "confidence": None if self.confidence is None else self.confidence.to_dict(),
            },
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Parse and validate; ModelError naming the bad key (or the unknown version)."""
        if not isinstance(data, Mapping):
            raise ModelError("malformed drift profile: expected a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"drift profile format_version {version!r} is not supported (this "
                f"agent reads version {FORMAT_VERSION}); rebuild the profile with "
                "`edge-agent convert profile` or upgrade the agent"
            )
        try:
            kind = data["kind"]
            layout = data["layout"]
            if kind not in ("reference", "window"):
                raise ValueError(f"kind {kind!r} is not reference/window")
            if layout not in ("features", "nhwc", "nchw", "hw"):
                raise ValueError(f"layout {layout!r} is unknown")
            features = {
                str(name): Histogram.from_dict(h, f"features.{name}")
                for name, h in dict(data["features"]).items()
            }
            q = data["quality"]
            quality = Quality(
                int(q["samples"]),
                int(q["nan_samples"]),
                int(q["out_of_range_samples"]),
                int(q["constant_samples"]),
            )
            vr = data["value_range"]
            value_range = None if vr is None else (float(vr[0]), float(vr[1]))
            prediction = data.get("prediction")
            class_counts = confidence = labels = None
            if prediction is not None:
                if prediction.get("class_counts") is not None:
                    class_counts = np.asarray(prediction["class_counts"], dtype=np.int64)
                if prediction.get("confidence") is not None:
                    confidence = Histogram.from_dict(
                        prediction["confidence"], "prediction.confidence"
                    )
                if prediction.get("labels") is not None:
                    labels = [str(label) for label in prediction["labels"]]
            image = {str(k): int(v) for k, v in dict(data.get("image") or {}).items()}
            return cls(
                kind,
                layout,
                features,
                quality,
                value_range,
                class_counts,
                confidence,
                labels,
                image,
                dict(data.get("meta") or {}),
                str(data.get("reference_digest", "")),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"malformed drift profile: {exc!r}") from exc


def _digest(features: Mapping[str, Histogram], confidence: Histogram | None) -> str:
    canon = {name: [float(e) for e in h.edges] for name, h in features.items()}
    if confidence is not None:
        canon["__confidence__"] = [float(e) for e in confidence.edges]
    blob = json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def detect_layout(shape: tuple[int, ...]) -> Layout:
    """Guess how a batch is laid out from its shape (pass ``layout=`` when it is ambiguous)."""
    if len(shape) <= 2:
        return "features"
    if len(shape) == 3:
        return "hw"
    if len(shape) == 4:
        if shape[-1] in (1, 3, 4):
            return "nhwc"
        if shape[1] in (1, 3, 4):
            return "nchw"
    raise ModelError(
        f"cannot tell the layout of inputs with shape {shape}: pass layout= "
        "(features, hw, nhwc or nchw)"
    )


def _to_nhwc(batch: np.ndarray, layout: Layout) -> np.ndarray:
    if layout == "hw":
        return batch[..., None]
    if layout == "nchw":
        return np.moveaxis(batch, 1, -1)
    return batch


def _downsample(frames: np.ndarray, limit: int) -> np.ndarray:
    """Block-average [N, H, W, C] so that H and W are at most ``limit``."""
    _, h, w, _ = frames.shape
    factor = max(1, math.ceil(max(h, w) / limit))
    if factor == 1:
        return frames
    h2, w2 = h // factor, w // factor
    cropped = frames[:, : h2 * factor, : w2 * factor, :]
    blocks: np.ndarray = cropped.reshape(len(frames), h2, factor, w2, factor, -1)
    return np.asarray(blocks.mean(axis=(2, 4)))


def image_features(
    batch: np.ndarray,
    layout: Layout,
    downsample: int = DEFAULT_DOWNSAMPLE,
    grid: int = DEFAULT_GRID,
) -> dict[str, np.ndarray]:
    """Per-sample image statistics on a downsampled frame (see the module docstring)."""
    frames = _downsample(_to_nhwc(np.asarray(batch, dtype=np.float64), layout), downsample)
    n, h, w, c = frames.shape
    out: dict[str, np.ndarray] = {}
    for ch in range(c):
        plane = frames[..., ch].reshape(n, -1)
        out[f"ch{ch}_mean"] = plane.mean(axis=1)
        out[f"ch{ch}_std"] = plane.std(axis=1)
    luma = frames[..., :3] @ _LUMA if c >= 3 else frames[..., 0]
    out["brightness"] = luma.reshape(n, -1).mean(axis=1)
    if h >= 3 and w >= 3:
        lap = (
            luma[:, :-2, 1:-1]
            + luma[:, 2:, 1:-1]
            + luma[:, 1:-1, :-2]
            + luma[:, 1:-1, 2:]
            - 4.0 * luma[:, 1:-1, 1:-1]
        )
        out["sharpness"] = lap.reshape(n, -1).var(axis=1)
    g = min(grid, h, w)
    if g >= 2:
        rows = np.array_split(np.arange(h), g)
        cols = np.array_split(np.arange(w), g)
        for r, rr in enumerate(rows):
            band = luma[:, rr[0] : rr[-1] + 1, :]
            for k, cc in enumerate(cols):
                out[f"grid_{r}_{k}"] = band[:, :, cc[0] : cc[-1] + 1].reshape(n, -1).mean(axis=1)
    return out


def extract_features(
    batch: np.ndarray,
    layout: Layout,
    feature_names: Sequence[str] | None = None,
    downsample: int = DEFAULT_DOWNSAMPLE,
    grid: int = DEFAULT_GRID,
) -> dict[str, np.ndarray]:
    """Feature name -> per-sample values, for either kind of input."""
    if layout != "features":
        return image_features(batch, layout, downsample, grid)
    table = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
    names = list(feature_names) if feature_names else [f"f{i}" for i in range(table.shape[1])]
    if len(names) != table.shape[1]:
        raise ModelError(f"{len(names)} feature names given for {table.shape[1]} features")
    return {name: table[:, i] for i, name in enumerate(names)}


def _quality(batch: np.ndarray, value_range: tuple[float, float] | None) -> Quality:
    flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
    finite = np.isfinite(flat)
    nan_rows = ~finite.all(axis=1)
    out_of_range: np.ndarray = np.zeros(len(flat), dtype=bool)
    if value_range is not None:
        with np.errstate(invalid="ignore"):
            outside = (flat < value_range[0]) | (flat > value_range[1])
            out_of_range = np.asarray(outside.any(axis=1))
    constant = (
        (flat.max(axis=1) == flat.min(axis=1)) & ~nan_rows
        if flat.shape[1] > 1
        else np.zeros(len(flat), dtype=bool)
    )
    return Quality(
        len(flat), int(nan_rows.sum()), int((out_of_range & ~nan_rows).sum()), int(constant.sum())
    )


def class_scores(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted class per sample, confidence per sample or None) from model outputs."""
    out = np.asarray(outputs)
    if out.ndim == 1:
        return out.astype(np.int64), None
    scores = out.reshape(len(out), -1).astype(np.float64)
    probabilities = scores
    rows_sum = scores.sum(axis=1)
    if scores.min(initial=0.0) < 0 or not np.allclose(rows_sum, 1.0, atol=1e-3):
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probabilities = exp / exp.sum(axis=1, keepdims=True)
    return scores.argmax(axis=1), probabilities.max(axis=1)


def build_profile(
    inputs: np.ndarray,
    outputs: np.ndarray | None = None,
    *,
    reference: Profile | None = None,
    layout: Layout = "auto",
    bins: int = DEFAULT_BINS,
    feature_names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    value_range: tuple[float, float] | None = None,
    downsample: int = DEFAULT_DOWNSAMPLE,
    grid: int = DEFAULT_GRID,
    meta: Mapping[str, Any] | None = None,
) -> Profile:
    """Profile a batch of model inputs (and optionally outputs).

    Without ``reference`` this builds a **reference** profile: bin edges are ``bins``
    equal-frequency quantiles of each feature, ``value_range`` (the valid input range used by
    the out-of-range check) defaults to the observed min/max of the inputs. With ``reference``
    it builds a **window** profile with the reference's edges, layout, extraction parameters,
    value range and labels (the other arguments are then ignored).

    ``inputs``: ``[N, F]`` / ``[N]`` features or ``[N, H, W]``, ``[N, H, W, C]``,
    ``[N, C, H, W]`` images (``layout="auto"`` guesses from the shape). ``outputs``: ``[N, K]``
    class scores, ``[N]`` class ids or ``[N]`` float outputs; it must have the same ``N``.
    Raises :class:`ModelError` for shapes it cannot profile.
    """
    batch = np.asarray(inputs)
    if batch.ndim == 0 or len(batch) == 0:
        raise ModelError("cannot profile an empty batch: give at least one sample")
    if outputs is not None and len(np.asarray(outputs)) != len(batch):
        raise ModelError(
            f"inputs have {len(batch)} samples but outputs have {len(np.asarray(outputs))}"
        )
    if reference is not None:
        layout = reference.layout
        downsample = reference.image.get("downsample", downsample)
        grid = reference.image.get("grid", grid)
        value_range = reference.value_range
        labels = reference.labels
        feature_names = list(reference.features) if layout == "features" else None
        output_feature = reference.features.get("output")
        if output_feature is not None and feature_names is not None:
            feature_names = [n for n in feature_names if n != "output"]
    elif layout == "auto":
        layout = detect_layout(batch.shape)
    if batch.ndim == 1:
        batch = batch[:, None]
    image = {"downsample": downsample, "grid": grid} if layout != "features" else {}
    values = extract_features(batch, layout, feature_names, downsample, grid)
    if reference is None and value_range is None:
        finite = np.asarray(batch, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        value_range = (float(finite.min()), float(finite.max())) if finite.size else None

    class_counts = confidence = None
    if outputs is not None:
        out = np.asarray(outputs)
        if out.ndim == 1 and not np.issubdtype(out.dtype, np.integer):
            values["output"] = out.astype(np.float64)
        else:
            classes, conf = class_scores(out)
            n_classes = (
                len(reference.class_counts)
                if reference is not None and reference.class_counts is not None
                else max(
                    int(classes.max(initial=0)) + 1,
                    out.shape[1] if out.ndim > 1 else 0,
                    len(labels or []),
                )
            )
            classes = classes[(classes >= 0) & (classes < n_classes)]
            class_counts = np.bincount(classes, minlength=n_classes).astype(np.int64)
            if conf is not None:
                edges = (
                    reference.confidence.edges
                    if reference is not None and reference.confidence is not None
                    else CONFIDENCE_EDGES
                )
                confidence = Histogram.from_values(conf, edges)

    features: dict[str, Histogram] = {}
    for name, column in values.items():
        if reference is not None:
            if name not in reference.features:
                raise ModelError(
                    f"feature {name!r} is not in the reference profile: the inputs "
                    "do not match the model the reference was built for"
                )
            edges = reference.features[name].edges
        else:
            edges = reference_edges(column, bins)
        features[name] = Histogram.from_values(column, edges)

    profile = Profile(
        kind="window" if reference is not None else "reference",
        layout=layout,
        features=features,
        quality=_quality(batch, value_range),
        value_range=value_range,
        class_counts=class_counts,
        confidence=confidence,
        labels=list(labels) if labels is not None else None,
        image=image,
        meta=dict(meta or {}),
    )
    profile.reference_digest = (
        reference.reference_digest if reference is not None else _digest(features, confidence)
    )
    return profile


def merge(a: Profile, b: Profile) -> Profile:
    """The profile of the union of the samples of ``a`` and ``b``.

    Both must be built against the same reference (same ``reference_digest``); raises
    :class:`ModelError` otherwise. The result is a window profile; ``meta.start`` / ``end``
    span both, ``meta.windows`` counts the windows merged.
    """
    if a.reference_digest != b.reference_digest or list(a.features) != list(b.features):
        raise ModelError(
            "cannot merge drift profiles built against different references "
            f"({a.reference_digest} vs {b.reference_digest})"
        )
    counts = None
    if a.class_counts is not None and b.class_counts is not None:
        counts = a.class_counts + b.class_counts
    else:
        counts = a.class_counts if a.class_counts is not None else b.class_counts
    confidence = a.confidence or b.confidence
    if a.confidence is not None and b.confidence is not None:
        confidence = a.confidence.merged(b.confidence)
    meta: dict[str, Any] = {**a.meta, **b.meta}
    starts = [m["start"] for m in (a.meta, b.meta) if m.get("start") is not None]
    ends = [m["end"] for m in (a.meta, b.meta) if m.get("end") is not None]
    if starts:
        meta["start"] = min(starts)
    if ends:
        meta["end"] = max(ends)
    meta["windows"] = int(a.meta.get("windows", 1)) + int(b.meta.get("windows", 1))
    return Profile(
        kind="window",
        layout=a.layout,
        features={name: h.merged(b.features[name]) for name, h in a.features.items()},
        quality=a.quality.merged(b.quality),
        value_range=a.value_range,
        class_counts=counts,
        confidence=confidence,
        labels=a.labels,
        image=dict(a.image),
        meta=meta,
        reference_digest=a.reference_digest,
    )


def save_profile(profile: Profile, path: Path) -> None:
    """Write ``profile`` as JSON atomically (temp file, fsync, rename, fsync the directory)."""
    path = Path(path)
    blob = json.dumps(profile.to_dict(), separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_profile(path: Path) -> Profile:
    """Read a profile written by :func:`save_profile`; ModelError naming the file if bad."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"drift profile {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"drift profile {path} is not readable JSON ({exc}); rebuild it with "
            "`edge-agent convert profile`"
        ) from exc
    try:
        return Profile.from_dict(data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
