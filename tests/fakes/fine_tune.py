"""A fine-tune of a sample model, for delta releases: some layers change, the rest stays.

Retraining only the last layers of a network (its classifier head, say) is the common
fine-tune on new data from the field; the file it yields differs from the old one in those
tensors only. This makes such a file from a committed ONNX model by moving the chosen tensors'
weights a little (seeded), keeping every other byte as the original serialization has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

HEAD = ("logits.W", "logits.B")
"""digits32's classifier head: 6.4 KB of its 570 KB."""
HEAD_AND_LAST_BLOCK = ("b9_pw.W", "b9_pw.B", *HEAD)
"""The head and the last pointwise convolution: about 19% of the bytes."""


def fine_tune(
    source: Path, output: Path, tensors: Iterable[str] | None = HEAD, seed: int = 0
) -> Path:
    """Write ``source`` with ``tensors`` nudged (None: every tensor, a full fine-tune)."""
    model = onnx.load(str(source))
    chosen = None if tensors is None else set(tensors)
    rng = np.random.default_rng(seed)
    changed = 0
    for initializer in model.graph.initializer:
        if chosen is not None and initializer.name not in chosen:
            continue
        weights = numpy_helper.to_array(initializer).copy()
        if weights.dtype.kind != "f":
            continue
        weights += rng.normal(0.0, 0.01, weights.shape).astype(weights.dtype)
        initializer.CopyFrom(numpy_helper.from_array(weights, initializer.name))
        changed += 1
    if chosen is not None and changed != len(chosen):
        raise ValueError(f"{source}: not all of {sorted(chosen)} are float initializers")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(model.SerializeToString())
    return output
