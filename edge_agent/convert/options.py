"""What the converter's commands can be asked to do: the option classes and their defaults.

Kept apart from the converters (which import TensorFlow, onnx and the runtimes) so that
``edge-agent convert`` takes its option defaults from here without loading any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "IOType",
    "IntType",
    "Method",
    "Mode",
    "Onnx2TFLiteOptions",
    "QuantizeOptions",
    "TFLiteMode",
    "TFLiteOptions",
]

Mode = Literal["dynamic", "static"]
Method = Literal["minmax", "entropy", "percentile"]
IntType = Literal["int8", "uint8"]
TFLiteMode = Literal["float32", "float16", "dynamic", "int8"]
IOType = Literal["int8", "uint8", "float32"]


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize; the defaults are static QDQ, S8S8, per-channel, MinMax."""

    mode: Mode = "static"
    method: Method = "minmax"
    per_channel: bool = True
    activations: IntType = "int8"
    """int8 (S8S8) suits ARM; on x86 without VNNI, uint8 (U8S8) is often faster."""
    weights: IntType = "int8"
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    op_types: tuple[str, ...] = ()
    """Quantize only these op types (empty: every op type onnxruntime can)."""
    preprocess: bool = True
    min_samples: int = 16
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Pin these inputs (name, or "" for the only one) to these shapes first; see prepare.py."""


@dataclass(frozen=True)
class TFLiteOptions:
    """How to convert."""

    mode: TFLiteMode = "int8"
    io_type: IOType = "int8"
    """Input/output dtype of an int8 model (float32 keeps a float interface around int8 ops)."""
    batch_size: int = 1
    allow_select_tf_ops: bool = False
    """Let ops without a TFLite builtin run as TensorFlow ops (needs the Flex delegate, which
    LiteRT's standard wheel does not have: the device will likely not load the model)."""
    min_samples: int = 16


@dataclass(frozen=True)
class Onnx2TFLiteOptions:
    """How to convert."""

    int8: bool = False
    io_type: Literal["int8", "float32"] = "int8"
    min_samples: int = 16
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Pin these inputs to these shapes (TFLite wants static shapes); see prepare.py."""
