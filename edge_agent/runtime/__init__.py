"""The runtime layer: load a model file and run it on the best delegate the device has.

>>> from edge_agent.runtime import load_model
>>> model = load_model("models/digits/digits_int8.tflite")
>>> model.delegate.name, [spec.describe() for spec in model.inputs]
"""

from __future__ import annotations

from edge_agent.runtime.base import (
    DYNAMIC,
    Backend,
    BoundDelegate,
    Quantization,
    SkippedDelegate,
    TensorSpec,
)
from edge_agent.runtime.registry import BACKENDS, backend_class, check_model_file, load_model

__all__ = [
    "BACKENDS",
    "DYNAMIC",
    "Backend",
    "BoundDelegate",
    "Quantization",
    "SkippedDelegate",
    "TensorSpec",
    "backend_class",
    "check_model_file",
    "load_model",
]
