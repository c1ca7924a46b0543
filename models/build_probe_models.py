"""Build the two tiny probe models `edge-agent doctor` runs on each delegate: y = 2x + 1.

Run with the convert environment: `.venv-convert/bin/python models/build_probe_models.py`.
Writes edge_agent/runtime/probes/probe.tflite and probe.onnx (a few hundred bytes each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "edge_agent" / "runtime" / "probes"


def build_tflite() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def affine(x):
        return {"y": x * 2.0 + 1.0}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [affine.get_concrete_function()], affine
    )
    return converter.convert()


def build_onnx() -> bytes:
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["doubled"]),
            helper.make_node("Add", ["doubled", "one"], ["y"]),
        ],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[two, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "probe.tflite").write_bytes(build_tflite())
    (OUT / "probe.onnx").write_bytes(build_onnx())
    for path in sorted(OUT.glob("probe.*")):
        print(path, path.stat().st_size, "bytes")
