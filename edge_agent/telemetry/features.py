"""What a drift profile measures in a batch: per-sample features, predictions, input quality.

Every *feature* is one scalar per sample; :mod:`edge_agent.telemetry.profile` summarises each
with a histogram. Pure numpy, vectorised over the batch:

* **tabular inputs** (``[N, F]`` or ``[N]``): each column is a feature (``f0``, ``f1``, ... or
  the names given);
* **image inputs** (``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``): the frame is first
  block-averaged down to at most ``downsample`` pixels a side, then per-channel mean and standard
  deviation (``ch0_mean``, ``ch0_std``, ...), ``brightness`` (mean luma), ``sharpness``
  (variance of the 4-neighbour Laplacian of luma) and a coarse ``grid``x``grid`` layout of luma
  (``grid_r_c``, mean luma per cell; catches rotation / framing changes that leave global
  statistics alone);
* **outputs** (:func:`class_scores`): the predicted class and, for ``[N, K]`` scores, the
  confidence (max probability; scores that are not probabilities are soft-maxed first);
* **data quality** on the raw input (:func:`input_quality`): samples with NaN/inf, with values
  outside the reference value range, and constant samples (every value equal: a blank or
  frozen frame).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.errors import ModelError

__all__ = [
    "DEFAULT_DOWNSAMPLE",
    "DEFAULT_GRID",
    "Layout",
    "Quality",
    "class_scores",
    "detect_layout",
    "extract_features",
    "image_features",
    "input_quality",
]

Layout = Literal["auto", "features", "nhwc", "nchw", "hw"]

DEFAULT_DOWNSAMPLE = 64
DEFAULT_GRID = 4
_LUMA = np.array([0.299, 0.587, 0.114])


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


def input_quality(batch: np.ndarray, value_range: tuple[float, float] | None) -> Quality:
    """Quality counters of a raw batch; ``value_range`` None skips the out-of-range check."""
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
