"""The pure arithmetic of evaluation and the gate decision."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.convert import metrics
from edge_agent.convert.gates import Gates, Measured, check_gates
from edge_agent.errors import ModelError
from edge_agent.runtime import TensorSpec


def test_agreement_accuracy_and_errors():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    cand = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]], np.float32)
    assert metrics.agreement(cand, ref) == 0.75
    assert metrics.accuracy(ref, np.array([0, 1, 0, 0])) == 0.75
    max_err, mean_err = metrics.abs_errors(cand, ref)
    assert max_err == pytest.approx(0.2)
    assert mean_err == pytest.approx(0.1)
    assert metrics.worst_samples(cand, ref, 1) == [2]
    assert metrics.worst_samples(ref, ref) == []


def test_cosine_handles_zero_vectors():
    zeros = np.zeros((2, 3), np.float32)
    assert metrics.cosine_per_sample(zeros, zeros).tolist() == [1.0, 1.0]
    one = np.array([[1.0, 0.0, 0.0]])
    assert metrics.cosine_per_sample(one, -one)[0] == pytest.approx(-1.0)
    assert metrics.cosine_per_sample(one, np.zeros((1, 3)))[0] == 0.0


def test_latency_percentiles():
    p50, p95, mean = metrics.latency_stats([1_000_000] * 19 + [21_000_000])
    assert p50 == pytest.approx(1.0)
    assert p95 == pytest.approx(2.0)
    assert mean == pytest.approx(2.0)


def test_pairs_by_name_else_position_and_aligns_layouts():
    a = [TensorSpec("x", (1, 10), np.dtype("float32"))]
    b = [TensorSpec("y", (1, 10), np.dtype("float32"))]
    assert metrics.pair_outputs(a, b) == [(0, 0)]
    with pytest.raises(ModelError, match="not the same model"):
        metrics.pair_outputs(a, [*b, *b])
    nchw = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    assert np.array_equal(metrics.align(nchw.transpose(0, 2, 3, 1), nchw, "f"), nchw)
    with pytest.raises(ModelError, match="cannot be compared"):
        metrics.align(np.zeros((1, 5)), np.zeros((1, 6)), "f")


def test_class_scores_detection():
    assert metrics.is_class_scores(TensorSpec("p", (-1, 10), np.dtype("float32")))
    assert metrics.is_class_scores(TensorSpec("p", (1, 1, 10), np.dtype("float32")))
    assert not metrics.is_class_scores(TensorSpec("box", (1, 4, 100), np.dtype("float32")))
    assert not metrics.is_class_scores(TensorSpec("s", (1, 1), np.dtype("float32")))


def _measured(**kw):
    base = dict(
        top1_agreement=0.995, accuracy_drop=0.002, size_ratio=0.3, min_cosine=0.99, has_labels=True
    )
    return Measured(**{**base, **kw})


def test_gates_pass_and_fail():
    assert all(g.passed for g in check_gates(Gates(max_size_ratio=0.5), _measured()))
    failed = check_gates(Gates(), _measured(top1_agreement=0.8, accuracy_drop=0.2))
    assert [(g.name, g.passed) for g in failed] == [
        ("top1_agreement", False),
        ("accuracy_drop", False),
    ]


def test_unmeasurable_gate_fails_instead_of_passing():
    results = check_gates(Gates(min_cosine=0.9), _measured(top1_agreement=None, min_cosine=None))
    assert {g.name: g.passed for g in results} == {
        "top1_agreement": False,
        "accuracy_drop": True,
        "min_cosine": False,
    }


def test_accuracy_gate_needs_labels():
    names = [g.name for g in check_gates(Gates(), _measured(has_labels=False))]
    assert names == ["top1_agreement"]


def test_class_output_prefers_probabilities_over_box_regression():
    """A face detector's [N, 4] boxes are shaped like scores; its [N, 2] softmax is the class."""
    specs = [
        TensorSpec("boxes", (-1, 4), np.dtype(np.float32)),
        TensorSpec("prob", (-1, 2), np.dtype(np.float32)),
    ]
    boxes = np.array([[0.1, -0.2, 0.3, 0.05], [0.0, 0.1, -0.1, 0.2]], np.float32)
    prob = np.array([[0.9, 0.1], [0.3, 0.7]], np.float32)
    pairs = [(0, 0), (1, 1)]
    assert metrics.class_output(pairs, specs, [boxes, prob]) == (1, 1)
    assert metrics.class_output(pairs[:1], specs, [boxes, prob]) == (0, 0)
    assert metrics.class_output([], specs, [boxes, prob]) is None
