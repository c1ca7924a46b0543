"""Checking and converting inputs and outputs against a model's tensor specs.

Shared by every backend so that a wrong shape or dtype gets the same clear InputError whatever
runtime is underneath, before the runtime sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edge_agent.errors import InputError
from edge_agent.runtime.base import DYNAMIC, Quantization, TensorSpec


def quantize(values: np.ndarray, quantization: Quantization, dtype: np.dtype) -> np.ndarray:
    """Real values -> stored integers of ``dtype``, rounded and clipped to its range."""
    info = np.iinfo(dtype)
    stored = np.round(values / quantization.scale) + quantization.zero_point
    return np.clip(stored, info.min, info.max).astype(dtype)


def dequantize(stored: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Stored integers -> real values as float32."""
    real: np.ndarray = (stored.astype(np.float32) - np.float32(quantization.zero_point)) * (
        np.float32(quantization.scale)
    )
    return real


def zeros_for(spec: TensorSpec, dynamic_size: int = 1) -> np.ndarray:
    """An input of zeros matching ``spec`` (dynamic dims set to ``dynamic_size``)."""
    shape = tuple(dynamic_size if d == DYNAMIC else d for d in spec.shape)
    return np.zeros(shape, dtype=spec.dtype)


def prepare_inputs(
    specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray], model: str
) -> list[np.ndarray]:
    """Check ``inputs`` against ``specs``; return arrays in spec order, ready for the runtime.

    Raises InputError naming the model and tensor when a name is missing or unknown, a rank or
    static dimension differs, or a dtype cannot be converted without changing its kind.
    """
    if len(inputs) != len(specs) or any(spec.name not in inputs for spec in specs):
        expected = ", ".join(spec.name for spec in specs)
        raise InputError(f"model '{model}' takes inputs [{expected}], got [{', '.join(inputs)}]")
    return [_prepare_one(spec, inputs[spec.name], model) for spec in specs]


def _prepare_one(spec: TensorSpec, value: np.ndarray, model: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != len(spec.shape) or any(
        want not in (DYNAMIC, got) for want, got in zip(spec.shape, array.shape, strict=True)
    ):
        raise InputError(
            f"model '{model}' input '{spec.name}' expects shape {_shape_text(spec.shape)}, "
            f"got {list(array.shape)}"
        )
    if array.dtype == spec.dtype:
        return np.ascontiguousarray(array)
    if spec.quantization is not None and array.dtype.kind == "f":
        return quantize(array, spec.quantization, spec.dtype)
    if array.dtype.kind in "biuf" and np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
        return np.ascontiguousarray(array, dtype=spec.dtype)
    if spec.dtype.kind == "f" and array.dtype.kind in "iu":
        return np.ascontiguousarray(array, dtype=spec.dtype)
    raise InputError(
        f"model '{model}' input '{spec.name}' expects {spec.dtype}"
        f"{' (or float, quantized for you)' if spec.quantization else ''}, got {array.dtype}"
    )


def finish_outputs(
    specs: Sequence[TensorSpec], values: Sequence[np.ndarray], dequantize_outputs: bool
) -> dict[str, np.ndarray]:
    """Name the runtime's outputs and dequantize the quantized ones unless asked not to."""
    outputs: dict[str, np.ndarray] = {}
    for spec, value in zip(specs, values, strict=True):
        if dequantize_outputs and spec.quantization is not None:
            value = dequantize(value, spec.quantization)
        outputs[spec.name] = value
    return outputs


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d == DYNAMIC else str(d) for d in shape) + "]"
