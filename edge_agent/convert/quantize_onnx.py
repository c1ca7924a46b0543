"""ONNX -> int8 ONNX with ``onnxruntime.quantization`` (no quantization arithmetic of our own).

The flow: load and check the model -> ``quant_pre_process`` (shape inference + ORT optimisation;
symbolic shape inference fails on some real exports, so it is retried without it and the note is
kept) -> ``quantize_dynamic`` or ``quantize_static`` (QDQ, calibrated with MinMax, Entropy or
Percentile on our samples) -> report which nodes stayed in float -> record how it was quantized in
the model's ``metadata_props`` (``edge_agent.quantization``, read back by ``package``) -> write the
file atomically and load it with the device runtime to prove it runs.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edge_agent._fs import write_atomically
from edge_agent.config import RuntimeSettings
from edge_agent.convert.calibration import (
    SampleSet,
    feeds_for,
    ort_calibration_reader,
    require_samples,
)
from edge_agent.convert.deps import require
from edge_agent.convert.options import Mode, QuantizeOptions
from edge_agent.convert.prepare import (
    QDQ_MIN_OPSET,
    default_opset,
    fix_input_shapes,
    upgrade_opset,
)
from edge_agent.convert.progress import steps
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import CalibrationInfo, QuantizationInfo
from edge_agent.runtime import load_model

METADATA_KEY = "edge_agent.quantization"
"""metadata_props key holding the QuantizationInfo JSON of a model this module quantized."""

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
INTEGER_OPS = frozenset(
    {
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
    }
)
SHAPE_OPS = frozenset(
    {
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Shape",
        "Identity",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Cast",
        "Constant",
    }
)
"""Ops that move data rather than compute on it: being left in float costs nothing."""
HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "LSTM", "GRU"})

_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


@dataclass
class QuantizeResult:
    """What came out, and what the user should know about it."""

    output: Path
    input_bytes: int
    output_bytes: int
    info: QuantizationInfo
    op_counts: dict[str, int]
    float_compute_ops: dict[str, int]
    """Compute nodes (not shape/data-movement ops) left in float, by op type."""
    notes: list[str] = field(default_factory=list)


def quantize_onnx(
    source: Path,
    output: Path,
    options: QuantizeOptions,
    samples: SampleSet | None,
    console: Console | None = None,
) -> QuantizeResult:
    """Quantize ``source`` into ``output``; see the module docstring for the steps.

    Raises ModelError (unreadable model, already quantized, nothing quantizable, the result does
    not load) and InputError (no or too few calibration samples, samples that do not fit the
    model's inputs, excluded nodes that do not exist).
    """
    onnx = require("onnx", "quantizing ONNX models")
    ort_quant = require("onnxruntime.quantization", "quantizing ONNX models")
    model = _load_onnx(onnx, source)
    _refuse_quantized(model, source)
    _check_exclusions(model, options, source)
    if options.mode == "static" and samples is None:
        raise InputError(
            "static quantization calibrates activation ranges on sample data: "
            "give --calibration DATA (an image folder, .npy or .npz), or use "
            "--mode dynamic"
        )
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edge-agent-quant-") as tmp:
        work = Path(tmp)
        start, per_channel = _as_it_comes(onnx, model, source, work, options, notes)
        prepared = (
            _preprocess(ort_quant, start, work / "pre.onnx", notes) if options.preprocess else start
        )
        quantized = work / "quantized.onnx"
        kwargs: dict[str, Any] = {
            "per_channel": per_channel,
            "weight_type": getattr(ort_quant.QuantType, _TYPES[options.weights]),
            "nodes_to_exclude": list(options.exclude_nodes) or None,
            "op_types_to_quantize": _op_types(model, options),
        }
        calibration = None
        try:
            if options.mode == "static":
                assert samples is not None
                calibration = _static(
                    ort_quant, prepared, quantized, options, samples, kwargs, console
                )
            else:
                with steps("quantizing (dynamic)", None, console):
                    ort_quant.quantize_dynamic(str(prepared), str(quantized), **kwargs)
        except (InputError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(
                f"{source}: onnxruntime.quantization failed: {_first_line(exc)}"
            ) from exc
        result_model = _load_onnx(onnx, quantized)
    info = QuantizationInfo(
        scheme=options.mode,
        weights=options.weights,
        activations="dynamic" if options.mode == "dynamic" else options.activations,
        per_channel=per_channel,
        calibration=calibration,
        excluded=[*options.exclude_nodes, *options.exclude_op_types],
        tool=f"onnxruntime.quantization {require('onnxruntime', 'quantizing').__version__} "
        f"quantize_{options.mode}" + (" QDQ" if options.mode == "static" else ""),
    )
    op_counts = dict(Counter(node.op_type for node in result_model.graph.node))
    if not any(op in QDQ_OPS or op in INTEGER_OPS for op in op_counts):
        raise ModelError(
            f"{source}: nothing was quantized: onnxruntime.quantization has no {options.mode} "
            f"int8 kernel for any of this model's ops ({', '.join(sorted(op_counts))}) with the "
            "options given (check --op-types / --exclude-op-types, or try the other --mode)"
        )
    _set_metadata(onnx, result_model, info)
    write_atomically(output, result_model.SerializeToString())
    _check_loads(output)
    return QuantizeResult(
        output=output,
        input_bytes=source.stat().st_size,
        output_bytes=output.stat().st_size,
        info=info,
        op_counts=op_counts,
        float_compute_ops=float_compute_ops(result_model, options.mode),
        notes=notes,
    )


def read_quantization_metadata(model: Any) -> QuantizationInfo | None:
    """The QuantizationInfo this module stored in an ONNX ModelProto, if any."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return QuantizationInfo.model_validate_json(prop.value)
    return None


def float_compute_ops(model: Any, mode: Mode) -> dict[str, int]:
    """Compute nodes of a quantized graph that still run in float, by op type.

    Static (QDQ): a node runs in int8 when ORT can fuse it with the DequantizeLinear feeding it
    and the QuantizeLinear after it, so a compute node with no DequantizeLinear input stays
    float. Dynamic: only the heavy ops are quantized; those still in float are listed (the
    Mul/Add/Cast around ConvInteger/MatMulInteger are the dynamic scheme itself).
    """
    if mode == "dynamic":
        return dict(Counter(n.op_type for n in model.graph.node if n.op_type in HEAVY_OPS))
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    left: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type in QDQ_OPS or node.op_type in INTEGER_OPS or node.op_type in SHAPE_OPS:
            continue
        if not any(producer.get(name) == "DequantizeLinear" for name in node.input if name):
            left[node.op_type] += 1
    return dict(left)


# --------------------------------------------------------------------------- steps


def _as_it_comes(
    onnx: Any, model: Any, source: Path, work: Path, options: QuantizeOptions, notes: list[str]
) -> tuple[Path, bool]:
    """Fixed input shapes and opset >= 13 (prepare.py); returns (model to quantize, per_channel).

    Below opset 13 the graph is converted up, because per-channel QDQ needs DequantizeLinear's
    ``axis``; where onnx's converter cannot, static quantization falls back to per-tensor scales
    and the notes say so (dynamic quantization does not need the axis).
    """
    changed = False
    per_channel = options.per_channel
    if options.input_shapes:
        model, fixed = fix_input_shapes(model, options.input_shapes)
        notes.extend(fixed)
        changed = bool(fixed)
    opset = default_opset(model)
    if opset < QDQ_MIN_OPSET:
        try:
            model = upgrade_opset(model)
            changed = True
            notes.append(
                f"opset {opset} -> {QDQ_MIN_OPSET} with onnx's version converter (QDQ with "
                f"per-channel scales needs DequantizeLinear's axis, new in opset {QDQ_MIN_OPSET})"
            )
        except ModelError as exc:
            if per_channel and options.mode == "static":
                per_channel = False
                notes.append(f"{exc}: quantizing with per-tensor scales instead")
            else:
                notes.append(f"{exc}: quantizing at opset {opset}")
    if not changed:
        return source, per_channel
    target = work / "prepared_source.onnx"
    onnx.save(model, str(target))
    return target, per_channel


def _static(
    ort_quant: Any,
    prepared: Path,
    quantized: Path,
    options: QuantizeOptions,
    samples: SampleSet,
    kwargs: dict[str, Any],
    console: Console | None,
) -> CalibrationInfo:
    probe = load_model(prepared, RuntimeSettings(warmup_runs=0))
    try:
        feeds = feeds_for(samples, probe.inputs)
    finally:
        probe.close()
    require_samples(samples, options.min_samples, "static int8 calibration")
    extra: dict[str, Any] = {}
    if options.method == "percentile":
        extra["CalibPercentile"] = 99.999
    with steps(
        f"calibrating ({options.method}, {samples.count} samples)", samples.count, console
    ) as advance:
        ort_quant.quantize_static(
            str(prepared),
            str(quantized),
            ort_calibration_reader(feeds, advance),
            quant_format=ort_quant.QuantFormat.QDQ,
            activation_type=getattr(ort_quant.QuantType, _TYPES[options.activations]),
            calibrate_method=getattr(ort_quant.CalibrationMethod, _METHODS[options.method]),
            extra_options=extra or None,
            **kwargs,
        )
    return CalibrationInfo(
        method=options.method, samples=samples.count, source=Path(samples.source).name
    )


def _preprocess(ort_quant: Any, source: Path, target: Path, notes: list[str]) -> Path:
    """quant_pre_process; on failure retry without symbolic shape inference, then go without."""
    pre = ort_quant.shape_inference.quant_pre_process
    try:
        pre(str(source), str(target), skip_symbolic_shape=False)
        return target
    except Exception as exc:  # an assertion deep in symbolic shape inference, or no sympy
        first = f"{type(exc).__name__}: {_first_line(exc)}"
    try:
        pre(str(source), str(target), skip_symbolic_shape=True)
        notes.append(
            f"quant_pre_process: symbolic shape inference failed ({first}); "
            "retried with skip_symbolic_shape=True"
        )
        return target
    except Exception as exc:
        notes.append(
            f"quant_pre_process failed ({first}; then {_first_line(exc)}): "
            "quantizing the model as it is"
        )
        return source


def _load_onnx(onnx: Any, path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX model")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model: {_first_line(exc)}") from None


def _refuse_quantized(model: Any, source: Path) -> None:
    ops = {node.op_type for node in model.graph.node}
    already = sorted(ops & (QDQ_OPS | INTEGER_OPS))
    if already:
        raise ModelError(
            f"{source}: already quantized (has {', '.join(already)}); quantize the "
            "float model instead"
        )


def _check_exclusions(model: Any, options: QuantizeOptions, source: Path) -> None:
    names = {node.name for node in model.graph.node}
    missing = [name for name in options.exclude_nodes if name not in names]
    if missing:
        sample = ", ".join(sorted(n for n in names if n)[:12])
        raise InputError(
            f"{source}: no node named {', '.join(missing)} to exclude; node names include: {sample}"
        )
    ops = {node.op_type for node in model.graph.node}
    unknown = [op for op in (*options.exclude_op_types, *options.op_types) if op not in ops]
    if unknown:
        raise InputError(
            f"{source}: the model has no {', '.join(unknown)} nodes; its op types "
            f"are {', '.join(sorted(ops))}"
        )


def _op_types(model: Any, options: QuantizeOptions) -> list[str] | None:
    if options.op_types:
        return [op for op in options.op_types if op not in options.exclude_op_types]
    if options.exclude_op_types:
        ops = sorted({node.op_type for node in model.graph.node})
        return [op for op in ops if op not in options.exclude_op_types]
    return None


def _set_metadata(onnx: Any, model: Any, info: QuantizationInfo) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = info.model_dump_json(exclude_none=True)
    onnx.helper.set_model_props(model, props)  # replaces the list with this dict


def _check_loads(output: Path) -> None:
    try:
        load_model(output, RuntimeSettings()).close()
    except ModelError as exc:
        raise ModelError(
            f"{output}: the quantized model does not load on onnxruntime: {exc}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
