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

The parts: what is measured per sample (features of tabular and image inputs, predicted class
and confidence, input quality) is :mod:`edge_agent.telemetry.features`; each feature is
summarised by a :class:`~edge_agent.telemetry.histogram.Histogram` (its JSON layout is
documented there). For outputs, ``[N, K]`` class scores give the predicted-class counts and a
``confidence`` histogram, ``[N]`` integers the class counts, ``[N]`` floats an ``output``
feature histogram.

API: :func:`build_profile`, :func:`merge`, :meth:`Profile.to_dict` / :meth:`Profile.from_dict`,
:func:`save_profile` / :func:`load_profile`. Malformed profiles raise
:class:`edge_agent.errors.ModelError` naming the bad key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge_agent._fs import write_atomically
from edge_agent.errors import ModelError
from edge_agent.telemetry.features import (
    DEFAULT_DOWNSAMPLE,
    DEFAULT_GRID,
    Layout,
    Quality,
    class_scores,
    detect_layout,
    extract_features,
    input_quality,
)
from edge_agent.telemetry.histogram import Histogram, reference_edges

__all__ = [
    "CONFIDENCE_EDGES",
    "DEFAULT_BINS",
    "FORMAT_VERSION",
    "Histogram",
    "Layout",
    "Profile",
    "Quality",
    "build_profile",
    "detect_layout",
    "load_profile",
    "merge",
    "save_profile",
]

FORMAT_VERSION = 1
"""Bumped whenever a reader of the previous version could misread the new one."""

DEFAULT_BINS = 10
CONFIDENCE_EDGES = np.array([0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0])
"""Fixed confidence bins: model confidence piles up near 1, where reference quantiles would
make bins so narrow that harmless calibration noise (0.9999 vs 0.99999) reads as drift."""


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
        quality=input_quality(batch, value_range),
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
    blob = json.dumps(profile.to_dict(), separators=(",", ":")).encode()
    write_atomically(Path(path), blob)


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
