"""The arithmetic of comparing a candidate model with its reference: pure numpy functions.

No runtime, no files, no clock: ``evaluate.py`` collects outputs and timings, these turn them
into numbers, and the unit tests check them on hand-made arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.runtime.base import TensorSpec


def latency_stats(durations_ns: Sequence[int]) -> tuple[float, float, float]:
    """(p50, p95, mean) in milliseconds of per-inference wall times."""
    if not durations_ns:
        return 0.0, 0.0, 0.0
    ms = np.asarray(durations_ns, dtype=np.float64) / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.mean())


def top1(scores: np.ndarray) -> np.ndarray:
    """Predicted class per sample of ``[N, C]`` (or ``[N, 1, C]``...) scores."""
    predicted: np.ndarray = np.asarray(scores).reshape(scores.shape[0], -1).argmax(axis=1)
    return predicted


def agreement(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Share of samples where both models predict the same class."""
    return float(np.mean(top1(candidate) == top1(reference)))


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose predicted class is the label."""
    return float(np.mean(top1(scores) == labels))


def abs_errors(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max, mean) absolute difference."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    return float(diff.max()), float(diff.mean())


def cosine_per_sample(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened output (1.0 where both are all zero)."""
    a = candidate.reshape(candidate.shape[0], -1).astype(np.float64)
    b = reference.reshape(reference.shape[0], -1).astype(np.float64)
    dot = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    result: np.ndarray = np.where(both_zero, 1.0, cosine)
    return result


def worst_samples(candidate: np.ndarray, reference: np.ndarray, count: int = 5) -> list[int]:
    """Indices of the samples whose outputs differ most (largest max abs difference)."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    per_sample = diff.reshape(diff.shape[0], -1).max(axis=1)
    order = np.argsort(-per_sample, kind="stable")[:count]
    return [int(i) for i in order if per_sample[i] > 0]


def is_class_scores(spec: TensorSpec) -> bool:
    """An output that looks like per-class scores: one axis of size > 1 besides the batch."""
    dims = [d for d in spec.shape[1:] if d != 1]
    return len(dims) == 1 and dims[0] > 1


def looks_like_probabilities(values: np.ndarray) -> bool:
    """Rows of non-negative numbers that sum to one (a softmax), as class scores should."""
    rows = values.reshape(values.shape[0], -1).astype(np.float64)
    return bool(rows.size) and bool(
        np.all(rows >= -1e-6) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)
    )


def class_output(
    pairs: Sequence[tuple[int, int]],
    reference_specs: Sequence[TensorSpec],
    reference_values: Sequence[np.ndarray],
) -> tuple[int, int] | None:
    """The (candidate, reference) output pair that holds class scores, if any.

    Among outputs shaped like class scores, one whose values are probabilities wins: a face
    detector's ``[N, 4]`` box regression is shaped like scores too, its ``[N, 2]`` softmax is
    the one whose top-1 means something.
    """
    shaped = [pair for pair in pairs if is_class_scores(reference_specs[pair[1]])]
    probable = [pair for pair in shaped if looks_like_probabilities(reference_values[pair[1]])]
    chosen = probable or shaped
    return chosen[0] if chosen else None


def pair_outputs(
    candidate: Sequence[TensorSpec], reference: Sequence[TensorSpec]
) -> list[tuple[int, int]]:
    """Which candidate output corresponds to which reference output.

    By name when both models use the same names (ONNX -> int8 ONNX), else by position (a
    converter renames outputs: TFLite's ``StatefulPartitionedCall:0``). Raises ModelError when
    the models do not have the same number of outputs.
    """
    if len(candidate) != len(reference):
        raise ModelError(
            f"the candidate has {len(candidate)} output(s) and the reference "
            f"{len(reference)}: they are not the same model"
        )
    ref_index = {spec.name: i for i, spec in enumerate(reference)}
    if all(spec.name in ref_index for spec in candidate):
        return [(i, ref_index[spec.name]) for i, spec in enumerate(candidate)]
    sizes = [_per_sample_size(spec) for spec in reference]
    by_size = [
        [r for r, size in enumerate(sizes) if size == _per_sample_size(spec)] for spec in candidate
    ]
    if all(len(match) == 1 for match in by_size) and len({m[0] for m in by_size}) == len(by_size):
        # onnx2tf may reorder outputs (PartitionedCall:1 first): unique sizes say which is which
        return [(i, match[0]) for i, match in enumerate(by_size)]
    return [(i, i) for i in range(len(candidate))]


def _per_sample_size(spec: TensorSpec) -> int | None:
    dims = spec.shape[1:]
    return None if any(d < 1 for d in dims) else int(np.prod(dims, dtype=np.int64))


def align(candidate: np.ndarray, reference: np.ndarray, name: str) -> np.ndarray:
    """The candidate output in the reference's layout (e.g. NHWC feature maps vs NCHW).

    Raises ModelError when no transpose makes the shapes equal.
    """
    if candidate.shape == reference.shape:
        return candidate
    if candidate.size == reference.size and candidate.ndim == reference.ndim == 4:
        for axes in ((0, 3, 1, 2), (0, 2, 3, 1)):
            moved: np.ndarray = candidate.transpose(axes)
            if moved.shape == reference.shape:
                return moved
    if candidate.size == reference.size and candidate.squeeze().shape == reference.squeeze().shape:
        return candidate.reshape(reference.shape)
    raise ModelError(
        f"output '{name}': candidate shape {list(candidate.shape)} cannot be "
        f"compared with the reference's {list(reference.shape)}"
    )
