"""Models as they come: old opsets and dynamic input shapes, made ready for quantization.

Third-party exports (Paddle's paddle2onnx, tf2onnx / keras2onnx, older PyTorch) are often at
opset 11 or 12 and leave the batch and spatial dimensions open. Two things break on them:

* static QDQ with per-channel weights writes ``DequantizeLinear(axis=...)``, which exists only
  from opset 13: onnxruntime then refuses the quantized model ("Unrecognized attribute: axis for
  operator DequantizeLinear"). :func:`upgrade_opset` converts the graph up with onnx's version
  converter first; where that converter has no adapter for an op, the caller falls back to
  per-tensor scales (which opset 10 already has) and says so;
* image data cannot be resized to ``[N, 3, ?, ?]`` and TFLite wants static shapes:
  :func:`fix_input_shapes` pins the inputs to ``--input-shape`` (and open batch axes to 1, the
  edge case) through onnxruntime's own model tools, then re-infers the output shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.convert.deps import require
from edge_agent.errors import InputError, ModelError
from edge_agent.runtime.base import DYNAMIC, TensorSpec

QDQ_MIN_OPSET = 13
"""The first opset whose DequantizeLinear takes ``axis`` (per-channel scales)."""

Shapes = Mapping[str, tuple[int, ...]]
"""Input name (or "" for the only input) -> fixed shape."""


def default_opset(model: Any) -> int:
    """The model's opset of the default ("ai.onnx") domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def upgrade_opset(model: Any, target: int = QDQ_MIN_OPSET) -> Any:
    """``model`` converted to opset ``target`` with onnx's version converter.

    Raises ModelError naming the converter's complaint (typically an op without an adapter) so
    the caller can fall back and tell the user why.
    """
    onnx = require("onnx", "converting ONNX opsets")
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, target)
        onnx.checker.check_model(upgraded)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ModelError(
            f"onnx's version converter cannot take opset {default_opset(model)} to {target}: "
            f"{text[0] if text else type(exc).__name__}"
        ) from None
    return upgraded


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["x=1,3,48,192", "1,3,8,8"]`` -> ``{"x": (1, 3, 48, 192), "": (1, 3, 8, 8)}``.

    Raises InputError for anything that is not a list of positive integers.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise InputError(
                f"--input-shape {value!r}: give NAME=D1,D2,... (or D1,D2,... for a "
                "single-input model) with positive dimensions, e.g. x=1,3,48,192"
            )
        shapes[name] = shape
    return shapes


def shape_for(spec: TensorSpec, shapes: Shapes, input_count: int) -> tuple[int, ...] | None:
    """The shape asked for ``spec``: by name, or the unnamed one for a single-input model."""
    if spec.name in shapes:
        return shapes[spec.name]
    if "" in shapes and input_count == 1:
        return shapes[""]
    return None


def fixed_specs(specs: Sequence[TensorSpec], shapes: Shapes) -> list[TensorSpec]:
    """``specs`` with the asked shapes and open batch axes set to 1 (what fix_input_shapes does)."""
    result = []
    for spec in specs:
        shape = shape_for(spec, shapes, len(specs)) or _batch_one(spec.shape)
        result.append(TensorSpec(spec.name, tuple(shape), spec.dtype, spec.quantization))
    return result


def fix_input_shapes(model: Any, shapes: Shapes) -> tuple[Any, list[str]]:
    """Pin every input's shape (asked shape, else open batch -> 1); returns (model, notes).

    Raises InputError when a shape names no input, has the wrong rank or contradicts a fixed
    dimension of the model.
    """
    require("onnx", "fixing ONNX input shapes")
    from onnxruntime.tools import onnx_model_utils  # its make_dim_param_fixed

    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    names = [value.name for value in inputs]
    unknown = [name for name in shapes if name and name not in names]
    if unknown or ("" in shapes and len(inputs) != 1):
        raise InputError(
            f"--input-shape: the model's inputs are {', '.join(names)}; name the one to fix "
            "(NAME=D1,D2,...)"
        )
    notes: list[str] = []
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        current = tuple(d.dim_value if d.HasField("dim_value") else DYNAMIC for d in dims)
        asked = shapes.get(value.name) or (shapes.get("") if len(inputs) == 1 else None)
        wanted = asked or _batch_one(current)
        if wanted == current:
            continue
        if len(wanted) != len(dims):
            raise InputError(
                f"--input-shape for '{value.name}' {list(wanted)}: the input has rank {len(dims)}"
            )
        _pin(onnx_model_utils, model.graph, value, wanted)
        notes.append(f"input '{value.name}' fixed from {_show(current)} to {_show(wanted)}")
    if any(shape_has_open_dims(value) for value in inputs):
        open_inputs = [
            f"{value.name} {_show(_dims(value))}" for value in inputs if shape_has_open_dims(value)
        ]
        raise InputError(
            "the model's inputs have open dimensions besides the batch "
            f"({'; '.join(open_inputs)}): give --input-shape NAME=D1,D2,... with the size the "
            "device will feed (TFLite and the image loader need fixed sizes)"
        )
    if notes:
        _infer_output_shapes(model, notes)
    return model, notes


def _infer_output_shapes(model: Any, notes: list[str]) -> None:
    """Give outputs with open dims the shapes that inference finds now.

    The -1s exporters write keep onnx's inference from replacing them, so it runs on a copy
    without output shapes.
    """
    onnx = require("onnx", "fixing ONNX input shapes")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for value in probe.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe)
    except Exception as exc:  # shape inference gave up: outputs keep their open dims
        notes.append(f"output shapes not re-inferred ({str(exc).splitlines()[0]})")
        return
    for value, found in zip(model.graph.output, inferred.graph.output, strict=True):
        if (
            shape_has_open_dims(value)
            and found.type.tensor_type.HasField("shape")
            and not shape_has_open_dims(found)
            and len(_dims(found)) == len(_dims(value))
        ):
            value.type.tensor_type.shape.CopyFrom(found.type.tensor_type.shape)


def _pin(tools: Any, graph: Any, value: Any, wanted: tuple[int, ...]) -> None:
    """Set each open dimension of one input; a named one everywhere in the graph it appears.

    Paddle exports name every open dimension "?", so a name shared by two axes of the same
    input is set on that input only (replacing it graph-wide would give H and W one size).
    """
    dims = value.type.tensor_type.shape.dim
    params = [d.dim_param for d in dims if d.HasField("dim_param")]
    for index, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            if dim.dim_value != wanted[index]:
                raise InputError(
                    f"--input-shape for '{value.name}' {list(wanted)}: axis {index} of the "
                    f"model is fixed at {dim.dim_value}"
                )
            continue
        if wanted[index] < 1:  # left open (not asked): reported by the caller
            continue
        param = dim.dim_param if dim.HasField("dim_param") else ""
        if param and param != "?" and params.count(param) == 1:
            tools.make_dim_param_fixed(graph, param, wanted[index])
        else:
            dim.Clear()
            dim.dim_value = wanted[index]


def shape_has_open_dims(value: Any, besides_batch: bool = False) -> bool:
    """A graph input with a dimension that is not fixed (other than the batch, if asked)."""
    dims = _dims(value)
    return any(d == DYNAMIC for d in (dims[1:] if besides_batch else dims))


def _dims(value: Any) -> tuple[int, ...]:
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DYNAMIC
        for d in value.type.tensor_type.shape.dim
    )


def _batch_one(shape: tuple[int, ...]) -> tuple[int, ...]:
    if shape and shape[0] in (DYNAMIC, 0):
        return (1, *shape[1:])
    return shape


def _show(shape: tuple[int, ...]) -> list[int | str]:
    return ["?" if d in (DYNAMIC, 0) else d for d in shape]
