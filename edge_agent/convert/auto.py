"""`convert auto`: try every recipe a device class can run, measure each, keep the best.

The flow, for a float ONNX model::

    reference   the model with its input shapes pinned (--input-shape; open batch -> 1), opset as
                it came: every candidate is made from it and measured against it
    candidates  ONNX: float16, dynamic int8, static QDQ int8 per-channel / per-tensor, with and
                without quant_pre_process (quantize_onnx.py, which converts old opsets up);
                TFLite: one onnx2tf run gives float32, float16, dynamic range, int8 with float
                I/O and full integer (onnx2tflite.py). Only the recipes the --target can run
                (selection.TARGETS) are built
    evaluate    each candidate against the reference through edge_agent.runtime (evaluate.py):
                size, p50 latency side by side, top-1 agreement when an output holds class
                scores, accuracy when the data has labels, per-output cosine; then the gates
    choose      selection.choose (pure): the smallest that passed within the latency budget, or
                the fastest within the size budget; every other candidate gets its reason

A recipe that cannot be built (onnx2tf stops on an op, the quantizer fails) is a row with its
error, not the end of the run. Anchors: Microsoft Olive's auto-optimisation and Intel Neural
Compressor's accuracy-aware tuning; this one is limited to what edge delegates run, and it
measures through the same runtime layer the device uses.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edge_agent._fs import write_atomically
from edge_agent.config import RuntimeSettings
from edge_agent.convert import metrics
from edge_agent.convert.calibration import DataSource, SampleSet, feeds_for, sample_batches
from edge_agent.convert.deps import require
from edge_agent.convert.evaluate import EvaluateOptions, evaluate_models
from edge_agent.convert.gates import Gates
from edge_agent.convert.onnx2tflite import run_onnx2tf
from edge_agent.convert.options import QuantizeOptions
from edge_agent.convert.prepare import default_opset, fix_input_shapes
from edge_agent.convert.quantize_onnx import INTEGER_OPS, QDQ_OPS, quantize_onnx
from edge_agent.convert.report import EvaluationReport
from edge_agent.convert.selection import (
    ONNX_RECIPES,
    TFLITE_RECIPES,
    Budget,
    Measured,
    Verdict,
    choose,
    recipes_for,
    target,
)
from edge_agent.errors import EdgeAgentError, InputError, ModelError
from edge_agent.runtime import load_model

_QDQ = {
    "onnx_qdq_per_channel": (True, True),
    "onnx_qdq_per_tensor": (False, True),
    "onnx_qdq_per_channel_nopre": (True, False),
    "onnx_qdq_per_tensor_nopre": (False, False),
}
"""recipe -> (per_channel, quant_pre_process)."""
_TFLITE_KIND = {
    "tflite_fp32": "float32",
    "tflite_fp16": "float16",
    "tflite_dynamic": "dynamic",
    "tflite_int8": "int8_float_io",
    "tflite_full_int8": "full_integer",
}


@dataclass(frozen=True)
class AutoOptions:
    """What to try and what the winner must satisfy."""

    target: str
    recipes: tuple[str, ...] = ()
    """Only these recipes (empty: every recipe the target can run)."""
    budget: Budget = field(default_factory=Budget)
    gates: Gates = field(default_factory=lambda: Gates(min_cosine=0.98))
    """top1_agreement applies only when the model has a class-score output."""
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    threads: int | None = 1
    """Threads per inference while measuring (1: least disturbed by other load)."""
    min_samples: int = 16


@dataclass
class Row:
    """One candidate in the report."""

    recipe: str
    file: str | None
    bytes: int | None
    size_ratio: float | None
    latency_p50_ms: float | None
    latency_ratio: float | None
    top1_agreement: float | None
    accuracy_drop: float | None
    cosine_min: dict[str, float]
    """Lowest per-sample cosine similarity, per output."""
    passed: bool
    chosen: bool
    reason: str


@dataclass
class AutoResult:
    """Everything `convert auto` found; ``winner`` is None when no candidate qualified."""

    model: str
    opset: int
    target: str
    reference: Path
    reference_bytes: int
    reference_latency_p50_ms: float | None
    calibration_samples: int
    evaluation_samples: int
    rows: list[Row]
    skipped: dict[str, str]
    """Recipes not tried, and why (the target cannot run them)."""
    notes: list[str]
    winner: str | None = None
    winner_file: Path | None = None
    winner_report: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        for key in ("reference", "winner_file", "winner_report"):
            data[key] = None if data[key] is None else str(data[key])
        return data


def auto_convert(
    model: Path,
    work: Path,
    calibration: DataSource,
    data: DataSource,
    options: AutoOptions,
    console: Console | None = None,
) -> AutoResult:
    """Build, evaluate and rank the candidates in ``work`` (kept: the winner is packaged from it).

    Raises InputError (unknown target or recipe, data that does not fit) and ModelError (not a
    float ONNX model); a recipe that fails is reported in its row instead.
    """
    tried, skipped = recipes_for(options.target, options.recipes)
    onnx = require("onnx", "convert auto")
    if model.suffix.lower() != ".onnx":
        raise InputError(
            f"{model}: convert auto starts from a float ONNX model (export Keras with tf2onnx, "
            "or use `convert tflite` for Keras / SavedModel)"
        )
    original = _load(onnx, model)
    work.mkdir(parents=True, exist_ok=True)
    fixed, notes = fix_input_shapes(original, options.input_shapes)
    reference = work / "reference.onnx"
    onnx.save(fixed, str(reference))
    specs = _inputs(reference)
    calib = calibration.load(specs)
    held_out = data.load(specs)
    gates = options.gates
    probabilities = _has_probabilities(reference, held_out)
    if not probabilities:
        gates = Gates(
            min_agreement=None,
            max_accuracy_drop=gates.max_accuracy_drop,
            max_size_ratio=gates.max_size_ratio,
            min_cosine=gates.min_cosine,
        )
        notes.append(
            "no output holds class probabilities (a softmax): judged by output cosine, not "
            "top-1 agreement"
        )

    built: dict[str, Path | str] = {}
    for recipe in tried:
        if recipe in ONNX_RECIPES:
            built[recipe] = _onnx_candidate(recipe, reference, work, calib, options, console)
    tflite = [r for r in tried if r in TFLITE_RECIPES]
    if tflite:
        built.update(_tflite_candidates(tflite, reference, work, calib, options, console))

    evaluate = EvaluateOptions(gates=gates, threads=options.threads, layer_analysis=False)
    measured: list[Measured] = []
    reports: dict[str, EvaluationReport] = {}
    for recipe in tried:
        outcome = built[recipe]
        if isinstance(outcome, str):
            measured.append(Measured(recipe, error=f"not built: {outcome}"))
            continue
        try:
            report = evaluate_models(outcome, reference, held_out, evaluate, console)
        except EdgeAgentError as exc:
            measured.append(Measured(recipe, error=f"evaluation failed: {exc}"))
            continue
        reports[recipe] = report
        write_atomically(
            work / f"{recipe}.eval.json", (report.model_dump_json(indent=2) + "\n").encode()
        )
        measured.append(_measured(recipe, report))
    winner, verdicts = choose(measured, options.budget)
    ref_latency = next(iter(reports.values())).latency["reference"].p50_ms if reports else None
    result = AutoResult(
        model=str(model),
        opset=default_opset(original),
        target=options.target,
        reference=reference,
        reference_bytes=reference.stat().st_size,
        reference_latency_p50_ms=ref_latency,
        calibration_samples=calib.count,
        evaluation_samples=held_out.count,
        rows=[_row(v, built[v.name], reports.get(v.name), probabilities) for v in verdicts],
        skipped={name: target(options.target).why for name in skipped},
        notes=notes,
    )
    if winner is not None:
        path = built[winner]
        assert isinstance(path, Path)
        result.winner, result.winner_file = winner, path
        result.winner_report = work / f"{winner}.eval.json"
    return result


# --------------------------------------------------------------------------- candidates


def _onnx_candidate(
    recipe: str,
    reference: Path,
    work: Path,
    calib: SampleSet,
    options: AutoOptions,
    console: Console | None,
) -> Path | str:
    output = work / f"{recipe}.onnx"
    try:
        if recipe == "onnx_fp16":
            _float16(reference, output)
        elif recipe == "onnx_dynamic_int8":
            quantize_onnx(reference, output, QuantizeOptions(mode="dynamic"), None, console)
        else:
            per_channel, preprocess = _QDQ[recipe]
            quantize_onnx(
                reference,
                output,
                QuantizeOptions(
                    per_channel=per_channel,
                    preprocess=preprocess,
                    min_samples=options.min_samples,
                ),
                calib,
                console,
            )
    except EdgeAgentError as exc:
        return str(exc)
    return output


def _float16(reference: Path, output: Path) -> None:
    """Float16 weights and compute, float32 inputs/outputs (onnxruntime's own converter)."""
    onnx = require("onnx", "float16 conversion")
    float16 = require("onnxruntime.transformers.float16", "float16 conversion")
    try:
        converted = float16.convert_float_to_float16(
            onnx.load(str(reference)), keep_io_types=True, disable_shape_infer=False
        )
    except Exception as exc:
        raise ModelError(f"float16 conversion failed: {_first_line(exc)}") from None
    write_atomically(output, converted.SerializeToString())
    load_model(output, RuntimeSettings(warmup_runs=0)).close()


def _tflite_candidates(
    recipes: list[str],
    reference: Path,
    work: Path,
    calib: SampleSet,
    options: AutoOptions,
    console: Console | None,
) -> dict[str, Path | str]:
    needs_int8 = any(r in ("tflite_dynamic", "tflite_int8", "tflite_full_int8") for r in recipes)
    folder = work / "onnx2tf"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        produced = run_onnx2tf(
            reference,
            folder,
            calib,
            int8=needs_int8,
            min_samples=options.min_samples,
            console=console,
        )
    except EdgeAgentError as exc:
        return {recipe: str(exc) for recipe in recipes}
    result: dict[str, Path | str] = {}
    for recipe in recipes:
        kind = _TFLITE_KIND[recipe]
        if kind not in produced:
            result[recipe] = f"onnx2tf wrote no {kind} model"
            continue
        target_path = work / f"{recipe}.tflite"
        shutil.copyfile(produced[kind], target_path)
        try:
            load_model(target_path, RuntimeSettings(warmup_runs=0)).close()
        except EdgeAgentError as exc:
            result[recipe] = f"does not load on LiteRT: {exc}"
            continue
        result[recipe] = target_path
    return result


# --------------------------------------------------------------------------- helpers


def _measured(recipe: str, report: EvaluationReport) -> Measured:
    return Measured(
        recipe,
        size_ratio=report.size_ratio,
        latency_ratio=report.latency_ratio,
        top1_agreement=report.top1_agreement,
        min_cosine=min((o.cosine_min for o in report.outputs), default=None),
        failed_gates=[
            f"{g.name}={'n/a' if g.value is None else round(g.value, 4)} (threshold {g.threshold})"
            for g in report.gates
            if not g.passed
        ],
    )


def _row(
    verdict: Verdict, outcome: Path | str, report: EvaluationReport | None, agreement: bool
) -> Row:
    """The report row; top-1 agreement only where it means something (a softmax output)."""
    path = outcome if isinstance(outcome, Path) else None
    return Row(
        recipe=verdict.name,
        file=path.name if path else None,
        bytes=path.stat().st_size if path else None,
        size_ratio=report.size_ratio if report else None,
        latency_p50_ms=report.latency["candidate"].p50_ms if report else None,
        latency_ratio=report.latency_ratio if report else None,
        top1_agreement=report.top1_agreement if report and agreement else None,
        accuracy_drop=report.accuracy_drop if report else None,
        cosine_min={o.reference_name: o.cosine_min for o in report.outputs} if report else {},
        passed=bool(report and report.passed),
        chosen=verdict.chosen,
        reason=verdict.reason,
    )


def _load(onnx: Any, path: Path) -> Any:
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model: {_first_line(exc)}") from None
    ops = {node.op_type for node in model.graph.node}
    if ops & (QDQ_OPS | INTEGER_OPS):
        raise ModelError(
            f"{path}: already quantized ({', '.join(sorted(ops & (QDQ_OPS | INTEGER_OPS)))}); "
            "convert auto starts from the float model"
        )
    return model


def _inputs(path: Path) -> Any:
    backend = load_model(path, RuntimeSettings(warmup_runs=0))
    try:
        return backend.inputs
    finally:
        backend.close()


def _has_probabilities(path: Path, samples: SampleSet, count: int = 8) -> bool:
    """Whether an output holds class probabilities on a few samples.

    Top-1 agreement means something for a softmax; on an embedding or a box regression of the
    same shape it fails models whose outputs match to a cosine of 1.0.
    """
    backend = load_model(path, RuntimeSettings(warmup_runs=0))
    try:
        feeds = feeds_for(samples, backend.inputs)
        rows: list[list[np.ndarray]] = [[] for _ in backend.outputs]
        for batch in sample_batches(feeds, 0, count):
            outputs = backend.run(batch)
            for row, spec in zip(rows, backend.outputs, strict=True):
                row.append(np.asarray(outputs[spec.name], dtype=np.float32))
        values = [np.concatenate(row) for row in rows]
        return any(
            metrics.is_class_scores(spec) and metrics.looks_like_probabilities(value)
            for spec, value in zip(backend.outputs, values, strict=True)
        )
    finally:
        backend.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
