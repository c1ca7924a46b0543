"""Models made at benchmark time for shapes the sample models do not have."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def image_classifier_224(path: Path) -> Path:
    """A light ONNX classifier with a 1x3x224x224 float32 input (pool -> dense -> softmax).

    The compute is small on purpose: what is measured is the cost of moving a 600 KB tensor
    through the API or a worker process, not the model.
    """
    return image_classifier(path, 224)


def image_classifier(path: Path, side: int) -> Path:
    """The light classifier of ``image_classifier_224`` for a 1x3xSIDExSIDE float32 input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(3, 10)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(10, np.float32), "b")
    shape = numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        ],
        f"classifier{side}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        initializer=[weights, bias, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
