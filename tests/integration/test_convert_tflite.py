"""`edge-agent convert tflite` / `onnx2tflite` with TensorFlow and onnx2tf (the `convert` extra).

Skipped cleanly on a device install. The Keras model is the digits CNN rebuilt with the exact
weights of models/digits/digits_fp32.onnx, so the TFLite results are compared with that model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.errors import InputError

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
onnx = pytest.importorskip("onnx")

pytestmark = [
    # TensorFlow / Keras internals under NumPy 2 (not our code; harmless):
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


def run(*args):
    return CliRunner().invoke(cli, ["convert", *map(str, args)])


@pytest.fixture(scope="module")
def keras_digits(models_dir, tmp_path_factory):
    from onnx import numpy_helper

    graph = onnx.load(str(models_dir / "digits" / "digits_fp32.onnx")).graph
    w = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    layers = keras.layers
    inp = keras.Input(shape=(8, 8, 1), name="input")
    x = layers.Conv2D(16, 3, activation="relu", name="conv1")(inp)
    x = layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = layers.Dense(10, name="logits")(layers.Flatten()(x))
    model = keras.Model(inp, layers.Softmax(name="probabilities")(x))
    model.get_layer("conv1").set_weights([w["conv1.W"].transpose(2, 3, 1, 0), w["conv1.B"]])
    model.get_layer("conv2").set_weights([w["conv2.W"].transpose(2, 3, 1, 0), w["conv2.B"]])
    dense = w["logits.W"].reshape(32, 4, 4, 10).transpose(1, 2, 0, 3).reshape(512, 10)
    model.get_layer("logits").set_weights([dense, w["logits.B"]])
    path = tmp_path_factory.mktemp("keras") / "digits.keras"
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("mode", "scheme", "max_ratio"), [("int8", "full-integer", 0.4), ("float16", "float16", 0.6)]
)
def test_keras_to_tflite_passes_gates(tmp_path, models_dir, keras_digits, mode, scheme, max_ratio):
    data = models_dir / "digits" / "test_set.npz"
    out = tmp_path / f"digits_{mode}.tflite"
    result = run("tflite", keras_digits, "-o", out, "--mode", mode, "--calibration", data, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quantization"]["scheme"] == scheme
    result = run(
        "evaluate",
        out,
        "--reference",
        models_dir / "digits" / "digits_fp32.onnx",
        "--data",
        data,
        "--max-size-ratio",
        str(max_ratio),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["accuracy"] >= 0.98


def test_int8_without_calibration_is_refused(tmp_path, keras_digits):
    result = run("tflite", keras_digits, "-o", tmp_path / "x.tflite", "--mode", "int8")
    assert isinstance(result.exception, InputError)
    assert "representative data set" in str(result.exception)


def test_onnx2tflite_int8_with_our_own_calibration_data(tmp_path, models_dir):
    """onnx2tf must convert offline: it gets our samples, never downloads its own."""
    pytest.importorskip("onnx2tf")
    data = models_dir / "digits" / "test_set.npz"
    fp32 = models_dir / "digits" / "digits_fp32.onnx"
    out = tmp_path / "digits_o2t_int8.tflite"
    result = run("onnx2tflite", fp32, "-o", out, "--int8", "--calibration", data, "--json")
    assert result.exit_code == 0, result.output
    assert "int8[?,8,8,1]" in json.loads(result.stdout)["inputs"][0]  # NHWC now
    result = run("evaluate", out, "--reference", fp32, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["top1_agreement"] >= 0.99


def test_onnx2tflite_accepts_node_names_with_at_sign(tmp_path, models_dir):
    from edge_agent.convert.onnx2tflite import sanitised

    model = onnx.load(str(models_dir / "digits" / "digits_fp32.onnx"))
    model.graph.node[0].name = "conv@1"
    model.graph.node[0].output[0] = "conv1@out"
    model.graph.node[1].input[0] = "conv1@out"
    src = tmp_path / "at.onnx"
    onnx.save(model, str(src))
    clean = sanitised(onnx, src)
    assert all("@" not in n.name and all("@" not in t for t in n.output) for n in clean.graph.node)
    onnx.checker.check_model(clean)
    _ = np  # numpy kept for parity with the other convert tests
