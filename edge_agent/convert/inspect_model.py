"""What a model file is, read from the file itself: how it is quantized, its tensor layouts.

``package`` describes a model from the model, not from what the user says about it: a TFLite
flatbuffer's tensor types and ops tell float16 / dynamic-range / static / full-integer apart; an
ONNX model quantized by ``quantize_onnx`` carries its QuantizationInfo in ``metadata_props``,
and any other ONNX model is classified by its ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.convert.deps import require
from edge_agent.manifest import (
    Preprocessing,
    QuantizationInfo,
    QuantizationScheme,
    TensorInfo,
    TensorQuantization,
)
from edge_agent.runtime import Backend, TensorSpec

_INT = (np.dtype(np.int8), np.dtype(np.uint8))


def tensor_info(spec: TensorSpec) -> TensorInfo:
    """A runtime TensorSpec as the manifest records it."""
    q = spec.quantization
    return TensorInfo(
        name=spec.name,
        shape=list(spec.shape),
        dtype=spec.dtype.name,
        layout=layout_of(spec),
        quantization=TensorQuantization(scale=q.scale, zero_point=q.zero_point) if q else None,
    )


def layout_of(spec: TensorSpec) -> Any:
    """'NHWC' / 'NCHW' for 4-D image-like tensors (1 or 3 channels), else None."""
    shape = spec.shape
    if len(shape) != 4:
        return None
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3):
        return "NHWC"
    return None


def default_preprocessing(spec: TensorSpec) -> Preprocessing:
    """Image inputs: resize to the input, RGB (or gray), scale 8-bit pixels to [0, 1]."""
    layout = layout_of(spec)
    if layout is None:
        return Preprocessing(kind="tensor")
    height, width, channels = (
        (spec.shape[1], spec.shape[2], spec.shape[3])
        if layout == "NHWC"
        else (spec.shape[2], spec.shape[3], spec.shape[1])
    )
    return Preprocessing(
        kind="image",
        layout=layout,
        color="gray" if channels == 1 else "rgb",
        resize=[height, width] if min(height, width) > 0 else None,
        scale=1.0 / 255.0,
    )


def quantization_of(backend: Backend) -> QuantizationInfo:
    """Classify a loaded model's quantization from its own tensors and ops."""
    if backend.format == "tflite":
        return _tflite_quantization(backend)
    return _onnx_quantization(backend)


def _tflite_quantization(backend: Backend) -> QuantizationInfo:
    interpreter = getattr(backend, "interpreter", None)
    if interpreter is None:
        return QuantizationInfo(
            scheme="float32",
            weights="float32",
            activations="float32",
            tool="unknown (no interpreter to inspect)",
        )
    dtypes = {np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    ops_details: list[dict[str, Any]] = getattr(interpreter, "_get_ops_details", list)()
    ops = {str(op.get("op_name", "")) for op in ops_details}
    io_dtype = backend.inputs[0].dtype
    if io_dtype in _INT:
        return QuantizationInfo(
            scheme="full-integer",
            weights="int8",
            activations=io_dtype.name,
            tool="tflite (inspected)",
        )
    if np.dtype(np.float16) in dtypes:
        return QuantizationInfo(
            scheme="float16", weights="float16", activations="float32", tool="tflite (inspected)"
        )
    if dtypes & set(_INT):
        scheme: QuantizationScheme = "static" if "QUANTIZE" in ops else "dynamic"
        return QuantizationInfo(
            scheme=scheme,
            weights="int8",
            activations="int8" if scheme == "static" else "dynamic",
            tool="tflite (inspected)",
        )
    return QuantizationInfo(
        scheme="float32", weights="float32", activations="float32", tool="tflite (inspected)"
    )


def _onnx_quantization(backend: Backend) -> QuantizationInfo:
    from edge_agent.convert.quantize_onnx import INTEGER_OPS, read_quantization_metadata

    onnx = require("onnx", "inspecting ONNX models")
    model = onnx.load(str(backend.path), load_external_data=False)
    stored = read_quantization_metadata(model)
    if stored is not None:
        return stored
    ops = {node.op_type for node in model.graph.node}
    if "DynamicQuantizeLinear" in ops:
        return QuantizationInfo(
            scheme="dynamic", weights="int8", activations="dynamic", tool="onnx (inspected)"
        )
    if "DequantizeLinear" in ops or ops & INTEGER_OPS:
        return QuantizationInfo(
            scheme="static", weights="int8", activations="int8", tool="onnx (inspected)"
        )
    fp16 = any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    return QuantizationInfo(
        scheme="float16" if fp16 else "float32",
        weights="float16" if fp16 else "float32",
        activations="float32",
        tool="onnx (inspected)",
    )
