"""Evaluate a converted model against its reference, through the device runtime layer.

Both models are loaded with ``edge_agent.runtime.load_model`` (LiteRT for ``.tflite``, ONNX
Runtime for ``.onnx``, with the delegate the device config would pick), so what is measured is
what a device would run, not a converter-side interpreter. Each sample is fitted to each
model's own input layout, run one at a time (batch 1, as on a device; the two models alternate so
neither gets the warmer cache), timed, and the outputs compared: top-1 agreement, accuracy when
labels exist, max/mean absolute error and cosine similarity per output, the samples that differ
most and, for ONNX QDQ candidates, the layers with the worst quantization noise. The gates decide
pass or fail (``gates.py``).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from edge_agent.config import RuntimeSettings
from edge_agent.convert import metrics
from edge_agent.convert.calibration import SampleSet, feeds_for
from edge_agent.convert.gates import Gates, Measured, check_gates
from edge_agent.convert.layers import worst_qdq_layers
from edge_agent.convert.progress import steps
from edge_agent.convert.report import (
    EvaluationReport,
    Latency,
    LayerError,
    ModelInfo,
    OutputComparison,
)
from edge_agent.errors import InputError
from edge_agent.manifest import sha256_file
from edge_agent.runtime import Backend, load_model

WARMUP_RUNS = 3


@dataclass(frozen=True)
class EvaluateOptions:
    """What to measure and how strictly."""

    gates: Gates = field(default_factory=Gates)
    threads: int | None = None
    """Threads per inference (None: the runtime's default)."""
    layer_analysis: bool = True
    """Compute the worst layers for ONNX QDQ candidates (a second pass over a few samples)."""


def evaluate_models(
    candidate: Path,
    reference: Path,
    samples: SampleSet,
    options: EvaluateOptions | None = None,
    console: Console | None = None,
) -> EvaluationReport:
    """Run both models on ``samples`` and compare; raises InputError / ModelError on bad input."""
    options = options or EvaluateOptions()
    settings = RuntimeSettings(threads=options.threads, warmup_runs=WARMUP_RUNS)
    cand = load_model(candidate, settings)
    try:
        ref = load_model(reference, settings)
        try:
            cand_feeds = feeds_for(samples, cand.inputs)
            ref_feeds = feeds_for(samples, ref.inputs)
            cand_out, ref_out, cand_ns, ref_ns = _run_both(
                cand, ref, cand_feeds, ref_feeds, samples.count, console
            )
            cand_info, ref_info = _info(cand), _info(ref)
            pairs = metrics.pair_outputs(cand.outputs, ref.outputs)
            class_output = metrics.class_output(pairs, ref.outputs, ref_out)
            ref_specs, cand_specs = ref.outputs, cand.outputs
        finally:
            ref.close()
    finally:
        cand.close()

    comparisons = []
    for ci, ri in pairs:
        aligned = metrics.align(cand_out[ci], ref_out[ri], ref_specs[ri].name)
        max_err, mean_err = metrics.abs_errors(aligned, ref_out[ri])
        cosine = metrics.cosine_per_sample(aligned, ref_out[ri])
        comparisons.append(
            OutputComparison(
                candidate_name=cand_specs[ci].name,
                reference_name=ref_specs[ri].name,
                max_abs_error=max_err,
                mean_abs_error=mean_err,
                cosine_mean=float(cosine.mean()),
                cosine_min=float(cosine.min()),
                worst_samples=metrics.worst_samples(aligned, ref_out[ri]),
            )
        )

    agreement = accuracy = ref_accuracy = drop = None
    if class_output is not None:
        c_scores, r_scores = cand_out[class_output[0]], ref_out[class_output[1]]
        agreement = metrics.agreement(c_scores, r_scores)
        if samples.labels is not None:
            accuracy = metrics.accuracy(c_scores, samples.labels)
            ref_accuracy = metrics.accuracy(r_scores, samples.labels)
            drop = ref_accuracy - accuracy

    layers: list[LayerError] = []
    note = "switched off (--no-layers)"
    if options.layer_analysis:
        layers, note = worst_qdq_layers(candidate, reference, cand_feeds)

    size_ratio = cand_info.bytes / ref_info.bytes
    min_cosine = min((c.cosine_min for c in comparisons), default=None)
    gate_results = check_gates(
        options.gates,
        Measured(
            top1_agreement=agreement,
            accuracy_drop=drop,
            size_ratio=size_ratio,
            min_cosine=min_cosine,
            has_labels=samples.labels is not None,
        ),
    )
    cand_lat, ref_lat = _latency(cand_ns), _latency(ref_ns)
    return EvaluationReport(
        candidate=cand_info,
        reference=ref_info,
        data=samples.source,
        samples=samples.count,
        size_ratio=size_ratio,
        latency={"candidate": cand_lat, "reference": ref_lat},
        latency_ratio=cand_lat.p50_ms / ref_lat.p50_ms if ref_lat.p50_ms else 0.0,
        top1_agreement=agreement,
        accuracy=accuracy,
        reference_accuracy=ref_accuracy,
        accuracy_drop=drop,
        outputs=comparisons,
        worst_layers=layers,
        worst_layers_note=note,
        measured_on=f"{platform.machine()} {platform.node()}, threads="
        f"{options.threads or 'default'}",
        gates=gate_results,
        passed=all(g.passed for g in gate_results),
    )


def _run_both(
    cand: Backend,
    ref: Backend,
    cand_feeds: dict[str, np.ndarray],
    ref_feeds: dict[str, np.ndarray],
    count: int,
    console: Console | None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], list[int]]:
    cand_rows: list[list[np.ndarray]] = [[] for _ in cand.outputs]
    ref_rows: list[list[np.ndarray]] = [[] for _ in ref.outputs]
    cand_ns: list[int] = []
    ref_ns: list[int] = []
    with steps(f"evaluating on {count} samples", count, console) as advance:
        for index in range(count):
            order = ((cand, cand_feeds, cand_rows, cand_ns), (ref, ref_feeds, ref_rows, ref_ns))
            for backend, feeds, rows, times in order if index % 2 == 0 else order[::-1]:
                batch = {name: array[index : index + 1] for name, array in feeds.items()}
                start = time.perf_counter_ns()
                outputs = backend.run(batch)
                times.append(time.perf_counter_ns() - start)
                for row, spec in zip(rows, backend.outputs, strict=True):
                    row.append(np.asarray(outputs[spec.name], dtype=np.float32))
            advance(1)
    if count == 0:
        raise InputError("no samples to evaluate on")
    return (
        [np.concatenate(r) for r in cand_rows],
        [np.concatenate(r) for r in ref_rows],
        cand_ns,
        ref_ns,
    )


def _info(backend: Backend) -> ModelInfo:
    return ModelInfo(
        path=str(backend.path),
        format=backend.format,
        bytes=backend.path.stat().st_size,
        sha256=sha256_file(backend.path),
        delegate=backend.delegate.name
        + (f" ({backend.delegate.detail})" if backend.delegate.detail else ""),
        inputs=[spec.describe() for spec in backend.inputs],
        outputs=[spec.describe() for spec in backend.outputs],
    )


def _latency(durations_ns: list[int]) -> Latency:
    p50, p95, mean = metrics.latency_stats(durations_ns)
    return Latency(p50_ms=p50, p95_ms=p95, mean_ms=mean)
