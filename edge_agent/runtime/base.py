"""What every inference backend provides, whatever runtime sits underneath.

A backend is loaded from one model file, introspects its inputs and outputs, binds the best
delegate it can (recording why it skipped the others), and runs on numpy arrays. Backends are
found through ``edge_agent.runtime.registry``, never imported by name elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

DYNAMIC = -1
"""A dimension whose size is only known at run time (KServe v2 uses -1 too)."""


@dataclass(frozen=True)
class Quantization:
    """Affine per-tensor quantization: ``real = (stored - zero_point) * scale``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model."""

    name: str
    shape: tuple[int, ...]
    """Dimensions; ``DYNAMIC`` (-1) where the size is decided per call."""
    dtype: np.dtype
    quantization: Quantization | None = None
    """Set for int8/uint8 tensors that carry real values; None for float or raw integer data."""

    def describe(self) -> str:
        """E.g. ``input: int8[1,8,8,1] q(scale=0.0039, zp=-128)``."""
        dims = ",".join("?" if d == DYNAMIC else str(d) for d in self.shape)
        text = f"{self.name}: {self.dtype}[{dims}]"
        if self.quantization is not None:
            q = self.quantization
            text += f" q(scale={q.scale:.6g}, zp={q.zero_point})"
        return text


@dataclass(frozen=True)
class SkippedDelegate:
    """A delegate that was preferred but not used, and why."""

    name: str
    reason: str


@dataclass
class BoundDelegate:
    """Which delegate actually runs the model, and what happened on the way there."""

    name: str
    """Canonical name (``xnnpack``, ``edgetpu``, ``cuda``, ``cpu``, ...) of the delegate bound."""
    detail: str = ""
    """Runtime-level identity: the ORT provider chain or the delegate library."""
    node_placement: dict[str, int] | None = None
    """ORT: how many graph nodes each provider took (None when unknown)."""
    skipped: list[SkippedDelegate] = field(default_factory=list)
    """Preferred delegates that were missing or failed, in the order they were tried."""


class Backend(Protocol):
    """A loaded model, ready to run. Implementations: LiteRTBackend, OnnxBackend."""

    format: ClassVar[str]
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    delegate: BoundDelegate

    def run(
        self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True
    ) -> dict[str, np.ndarray]:
        """Run one inference.

        Float inputs for quantized tensors are quantized with the tensor's scale / zero point;
        integer inputs of the tensor's own dtype are passed as they are. Quantized outputs are
        dequantized to float32 unless ``dequantize`` is False. Raises InputError for inputs that
        do not match the spec and ModelError when the runtime fails.
        """
        ...

    def warm_up(self, runs: int = 1) -> None:
        """Run ``runs`` inferences on zeros (lazy compilation, caches, page-in)."""
        ...

    def close(self) -> None:
        """Release the runtime's resources; the backend cannot run afterwards."""
        ...
