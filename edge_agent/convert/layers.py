"""Which layers a quantization hurt most: onnxruntime's own QDQ debugging tools.

For an ONNX QDQ candidate against its float ONNX reference, ``onnxruntime.quantization.
qdq_loss_debug`` exposes every intermediate tensor of both graphs, matches the dequantized
tensors to the float ones by name, and computes the signal-to-quantization-noise ratio (SQNR,
dB) of each. The lowest are the layers to keep in float (``quantize --exclude-nodes``). Other
pairs (TFLite, or models that share no tensor names) get a note saying why there is no table.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_agent.convert.calibration import ort_calibration_reader
from edge_agent.convert.report import LayerError


def worst_qdq_layers(
    candidate: Path,
    reference: Path,
    feeds: Mapping[str, np.ndarray],
    count: int = 8,
    max_samples: int = 32,
) -> tuple[list[LayerError], str]:
    """Up to ``count`` tensors with the lowest SQNR, and a note when none can be computed."""
    if candidate.suffix.lower() != ".onnx" or reference.suffix.lower() != ".onnx":
        return [], "per-layer errors need an ONNX QDQ candidate and its float ONNX reference"
    try:
        import onnx
        from onnxruntime.quantization import qdq_loss_debug
    except ImportError:
        return [], "per-layer errors need the onnx package (pip install 'edge-agent[convert]')"
    ops = {node.op_type for node in onnx.load(str(candidate), load_external_data=False).graph.node}
    if "DequantizeLinear" not in ops:
        return [], "the candidate is not a QDQ model (no DequantizeLinear nodes)"
    subset = {name: array[:max_samples] for name, array in feeds.items()}
    with tempfile.TemporaryDirectory(prefix="edge-agent-layers-") as tmp:
        activations = []
        for source, name in ((candidate, "candidate.onnx"), (reference, "reference.onnx")):
            augmented = Path(tmp) / name
            qdq_loss_debug.modify_model_output_intermediate_tensors(source, augmented)
            activations.append(
                qdq_loss_debug.collect_activations(
                    str(augmented),
                    ort_calibration_reader(subset, lambda _n: None),
                    execution_providers=["CPUExecutionProvider"],
                )
            )
    matching = qdq_loss_debug.create_activation_matching(activations[0], activations[1])
    for match in matching.values():
        # a tensor the float model lacks (the candidate was made from a pre-processed or
        # opset-converted copy): onnxruntime's error function wants the key all the same
        match.setdefault("float", None)
    errors = qdq_loss_debug.compute_activation_error(matching)
    rows = [
        LayerError(tensor=name, sqnr_db=float(err["xmodel_err"]))
        for name, err in errors.items()
        if "xmodel_err" in err and math.isfinite(float(err["xmodel_err"]))
    ]
    if not rows:
        return [], "the candidate and the reference share no intermediate tensor names"
    rows.sort(key=lambda row: row.sqnr_db)
    return rows[:count], ""
