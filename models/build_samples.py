#!/usr/bin/env python3
"""Build the sample models committed under ``models/``.

Regenerate (from the repository root)::

    python3 -m venv .venv-convert
    .venv-convert/bin/pip install -r models/requirements-build.txt
    .venv-convert/bin/python models/build_samples.py

What it does, deterministically (fixed seeds, op determinism, no downloads):

* loads scikit-learn's bundled ``load_digits`` (1797 8x8 images, shipped inside the
  scikit-learn wheel), scales pixels to [0, 1] (x / 16) and makes a stratified
  80/20 train/test split with a fixed seed;
* ``models/digits/``: trains a small Keras CNN on 8x8x1 inputs and writes
  ``digits_fp32.tflite``, ``digits_int8.tflite`` (full integer, int8 I/O),
  ``digits_fp32.onnx`` (the same weights, graph written with ``onnx.helper``),
  ``digits_int8.onnx`` (static QDQ, per-channel), ``labels.txt``, ``test_set.npz``
  and five PNG samples;
* ``models/digits32/``: trains a MobileNet-style depthwise-separable CNN on the same
  digits bilinearly upscaled to 32x32 and replicated to 3 channels, and writes
  ``digits32_fp32.tflite``, ``digits32_int8.tflite``, ``digits32_fp32.onnx``
  (BatchNorm folded, graph written with ``onnx.helper``), ``digits32_int8.onnx``
  and ``labels.txt``;
* re-runs every artifact on the test split with the *device* runtimes (LiteRT from
  ``ai_edge_litert`` and onnxruntime) by calling this same file with ``--eval`` under
  the device venv's interpreter (``.venv/bin/python`` by default), and prints a JSON
  summary; the deterministic part of it (accuracies, I/O specs, sizes, sha256) is
  also written to ``models/summary.json``.

The top level of this module imports only numpy and the standard library, so that
``--eval`` (and :func:`upscale_digits`) work in the device venv, which has no
TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

SEED = 1234
TEST_FRACTION = 0.2
NUM_CLASSES = 10
CALIB_SAMPLES = 200  # train samples used to calibrate int8 (TFLite and ONNX)
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR version that goes with opset 17 (onnx.helper.VERSION_TABLE)

MODELS_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODELS_DIR.parent
DIGITS_DIR = MODELS_DIR / "digits"
DIGITS32_DIR = MODELS_DIR / "digits32"
SUMMARY_PATH = MODELS_DIR / "summary.json"
DEFAULT_EVAL_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"

# digits32: (kind, out_channels, stride). "conv" = 3x3 conv + BN + ReLU6; "dw" =
# depthwise 3x3 + BN + ReLU6 followed by pointwise 1x1 + BN + ReLU6 (MobileNet v1 block).
DIGITS32_ARCH: list[tuple[str, int, int]] = [
    ("conv", 32, 1),  # 32x32x32
    ("dw", 64, 1),  # 32x32x64
    ("dw", 96, 1),  # 32x32x96
    ("dw", 96, 1),
    ("dw", 96, 1),
    ("dw", 96, 1),
    ("dw", 160, 2),  # 16x16x160
    ("dw", 160, 1),
    ("dw", 160, 1),
    ("dw", 160, 1),
]  # then global average pool -> Dense(10) -> Softmax. ~66 M MACs, ~130 k parameters.
BN_EPSILON = 1e-3
RELU6 = 6.0


# --------------------------------------------------------------------------- data


def upscale_digits(x: np.ndarray, size: int = 32) -> np.ndarray:
    """Bilinear upscale of [n, h, w, 1] float images to [n, size, size, 3] float32.

    Half-pixel centres with edge clamping: identical (to float rounding) to
    ``tf.image.resize(x, (size, size), "bilinear")``, ONNX ``Resize`` (linear,
    half_pixel) and OpenCV ``INTER_LINEAR`` for upscaling. The gray channel is
    replicated to 3 channels. numpy only, so a device pipeline can use it.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    _, h, w, _ = x.shape

    def axis_weights(in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(size, dtype=np.float64) + 0.5) * (in_size / size) - 0.5
        src = np.clip(src, 0.0, in_size - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, in_size - 1)
        return i0, i1, (src - i0)

    y0, y1, fy = axis_weights(h)
    x0, x1, fx = axis_weights(w)
    img = x[..., 0].astype(np.float64)
    top = img[:, y0, :] * (1 - fy)[None, :, None] + img[:, y1, :] * fy[None, :, None]
    out = top[:, :, x0] * (1 - fx)[None, None, :] + top[:, :, x1] * fx[None, None, :]
    out = out.astype(np.float32)[..., None]
    return np.repeat(out, 3, axis=-1)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 80/20 split of sklearn's bundled digits; x is [n, 8, 8, 1] in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
    )
    return x_tr, x_te, y_tr, y_te


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so reruns are byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


# --------------------------------------------------------------------------- keras


def seed_everything() -> None:
    os.environ["PYTHONHASHSEED"] = str(SEED)
    random.seed(SEED)
    np.random.seed(SEED)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()


def build_digits_keras():
    import tensorflow as tf

    L = tf.keras.layers
    inp = tf.keras.Input(shape=(8, 8, 1), name="input")
    x = L.Conv2D(16, 3, padding="valid", activation="relu", name="conv1")(inp)  # 6x6x16
    x = L.Conv2D(32, 3, padding="valid", activation="relu", name="conv2")(x)  # 4x4x32
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(NUM_CLASSES, name="logits")(x)
    out = L.Softmax(name="probabilities")(x)
    return tf.keras.Model(inp, out, name="digits_cnn")


def build_digits32_keras():
    import tensorflow as tf

    L = tf.keras.layers

    def bn(name):
        return L.BatchNormalization(momentum=0.9, epsilon=BN_EPSILON, name=name)

    inp = tf.keras.Input(shape=(32, 32, 3), name="input")
    x = inp
    for i, (kind, ch, stride) in enumerate(DIGITS32_ARCH):
        if kind == "conv":
            x = L.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, name=f"b{i}_conv")(
                x
            )
            x = bn(f"b{i}_bn")(x)
            x = L.ReLU(max_value=RELU6, name=f"b{i}_relu")(x)
        else:
            x = L.DepthwiseConv2D(
                3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw"
            )(x)
            x = bn(f"b{i}_dw_bn")(x)
            x = L.ReLU(max_value=RELU6, name=f"b{i}_dw_relu")(x)
            x = L.Conv2D(ch, 1, use_bias=False, name=f"b{i}_pw")(x)
            x = bn(f"b{i}_pw_bn")(x)
            x = L.ReLU(max_value=RELU6, name=f"b{i}_pw_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(NUM_CLASSES, name="logits")(x)
    out = L.Softmax(name="probabilities")(x)
    return tf.keras.Model(inp, out, name="digits32_mobilenet")


def train(model, x_tr, y_tr, *, epochs: int, lr: float, batch_size: int = 32) -> float:
    import tensorflow as tf

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return time.perf_counter() - t0


def keras_accuracy(model, x, y) -> float:
    p = model.predict(x, batch_size=256, verbose=0)
    return float((p.argmax(-1) == y).mean())


# --------------------------------------------------------------------------- tflite


def to_tflite(model, input_shape: tuple[int, ...], calib: np.ndarray | None) -> bytes:
    """Convert with a fixed [1, ...] signature: input "input", output "probabilities".

    With ``calib`` given: full-integer int8 (int8 input and output, int8 kernels),
    calibrated on those samples one at a time.
    """
    import keras
    import tensorflow as tf

    # Keras 3 variables are not tf.Module-tracked, so a hand-made tf.Module/SavedModel (or
    # from_concrete_functions) leaves READ_VARIABLE ops that int8 calibration rejects;
    # keras.export.ExportArchive tracks them and the converter then freezes them.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda x: {"probabilities": model(x, training=False)},
        input_signature=[tf.TensorSpec(input_shape, tf.float32, name="input")],
    )
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        if calib is not None:
            return _convert_int8(conv, calib)
        return conv.convert()


def _convert_int8(conv, calib: np.ndarray) -> bytes:
    import tensorflow as tf

    def representative():
        for i in range(calib.shape[0]):
            yield {"input": calib[i : i + 1].astype(np.float32)}

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


# --------------------------------------------------------------------------- onnx


def _same_pads(in_size: int, k: int, s: int) -> tuple[int, int]:
    """TF/Keras 'same' padding for one axis: (begin, end); the extra pixel goes at the end."""
    out = -(-in_size // s)
    total = max((out - 1) * s + k - in_size, 0)
    return total // 2, total - total // 2


def _finish_onnx(nodes, inits, in_shape_chw, graph_name: str):
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape_chw])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", NUM_CLASSES])
    graph = helper.make_graph(nodes, graph_name, [inp], [out], initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="edge-agent/models/build_samples.py",
        producer_version="1",
    )
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = f"{graph_name}: input NCHW float32 in [0,1], output softmax probabilities"
    onnx.checker.check_model(model, full_check=True)
    return model


def digits_to_onnx(model):
    """digits CNN -> ONNX (NCHW), same weights, graph written by hand with onnx.helper."""
    from onnx import helper, numpy_helper

    w1, b1 = model.get_layer("conv1").get_weights()
    w2, b2 = model.get_layer("conv2").get_weights()
    wd, bd = model.get_layer("logits").get_weights()
    # Keras kernels are HWIO; ONNX Conv wants OIHW.
    w1 = w1.transpose(3, 2, 0, 1)
    w2 = w2.transpose(3, 2, 0, 1)
    # Keras flattens NHWC as (h, w, c); ONNX Flatten on NCHW gives (c, h, w):
    # reorder the Dense rows to match.
    c, h, w = w2.shape[0], 4, 4
    wd = wd.reshape(h, w, c, NUM_CLASSES).transpose(2, 0, 1, 3).reshape(c * h * w, NUM_CLASSES)

    def init(name, arr):
        return numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name)

    inits = [
        init("conv1.W", w1),
        init("conv1.B", b1),
        init("conv2.W", w2),
        init("conv2.B", b2),
        init("logits.W", wd),
        init("logits.B", bd),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["input", "conv1.W", "conv1.B"],
            ["conv1"],
            name="conv1",
            kernel_shape=[3, 3],
            strides=[1, 1],
            pads=[0, 0, 0, 0],
        ),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node(
            "Conv",
            ["relu1", "conv2.W", "conv2.B"],
            ["conv2"],
            name="conv2",
            kernel_shape=[3, 3],
            strides=[1, 1],
            pads=[0, 0, 0, 0],
        ),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "logits.W", "logits.B"], ["logits"], name="logits"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    return _finish_onnx(nodes, inits, [1, 8, 8], "digits_cnn")


def digits32_to_onnx(model):
    """digits32 MobileNet-style CNN -> ONNX (NCHW): BatchNorm folded into the convolutions,
    depthwise convs as grouped Conv, ReLU6 as Clip, 'same' padding made explicit."""
    from onnx import helper, numpy_helper

    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    clip_lo = init("relu6.min", np.array(0.0, np.float32))
    clip_hi = init("relu6.max", np.array(RELU6, np.float32))

    def fold(kernel_oihw, bn_name):
        gamma, beta, mean, var = model.get_layer(bn_name).get_weights()
        scale = gamma / np.sqrt(var + BN_EPSILON)
        return kernel_oihw * scale[:, None, None, None], beta - mean * scale

    def conv_bn_relu6(x, name, kernel_oihw, bn_name, k, s, group, size):
        w, b = fold(kernel_oihw, bn_name)
        pb, pe = _same_pads(size, k, s)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, init(f"{name}.W", w), init(f"{name}.B", b)],
                [name],
                name=name,
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[pb, pb, pe, pe],
                group=group,
            )
        )
        nodes.append(
            helper.make_node(
                "Clip", [name, clip_lo, clip_hi], [f"{name}_relu6"], name=f"{name}_relu6"
            )
        )
        return f"{name}_relu6", -(-size // s)

    x, size = "input", 32
    for i, (kind, _ch, stride) in enumerate(DIGITS32_ARCH):
        if kind == "conv":
            k = model.get_layer(f"b{i}_conv").get_weights()[0]  # HWIO
            x, size = conv_bn_relu6(
                x, f"b{i}_conv", k.transpose(3, 2, 0, 1), f"b{i}_bn", 3, stride, 1, size
            )
        else:
            kd = model.get_layer(f"b{i}_dw").get_weights()[0]  # [3, 3, C, 1]
            x, size = conv_bn_relu6(
                x, f"b{i}_dw", kd.transpose(2, 3, 0, 1), f"b{i}_dw_bn", 3, stride, kd.shape[2], size
            )
            kp = model.get_layer(f"b{i}_pw").get_weights()[0]  # [1, 1, Cin, Cout]
            x, size = conv_bn_relu6(
                x, f"b{i}_pw", kp.transpose(3, 2, 0, 1), f"b{i}_pw_bn", 1, 1, 1, size
            )
    wd, bd = model.get_layer("logits").get_weights()
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["flat", init("logits.W", wd), init("logits.B", bd)], ["logits"], name="logits"
        ),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    return _finish_onnx(nodes, inits, [3, 32, 32], "digits32_mobilenet")


def quantize_onnx(fp32_path: Path, int8_path: Path, calib_nchw: np.ndarray) -> None:
    """Static QDQ int8 (activations and weights int8, weights per-channel), MinMax calibration."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, data: np.ndarray):
            self._it = iter([{"input": data[i : i + 1]} for i in range(data.shape[0])])

        def get_next(self):
            return next(self._it, None)

    quantize_static(
        str(fp32_path),
        str(int8_path),
        Reader(calib_nchw.astype(np.float32)),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
    )


def onnx_vs_keras(model, onnx_path: Path, x_nhwc: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"input": x_nhwc.transpose(0, 3, 1, 2).copy()})[0]
    want = model.predict(x_nhwc, batch_size=256, verbose=0)
    return float(np.abs(got - want).max())


# --------------------------------------------------------------------------- eval (device venv)


def _tflite_interpreter(path: Path, threads: int = 1):
    try:
        from ai_edge_litert.interpreter import Interpreter

        runtime = "ai_edge_litert"
    except ImportError:  # pragma: no cover - only when run outside the device venv
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
        runtime = "tensorflow.lite (fallback: ai_edge_litert not importable)"
    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    return interp, runtime


def _io_spec_tflite(d: dict) -> dict:
    scale, zp = d["quantization"]
    spec = {
        "name": d["name"],
        "shape": [int(v) for v in d["shape"]],
        "dtype": np.dtype(d["dtype"]).name,
        "layout": "NHWC" if len(d["shape"]) == 4 else "NC",
    }
    if scale:
        spec["scale"] = float(scale)
        spec["zero_point"] = int(zp)
    return spec


def eval_tflite(path: Path, x: np.ndarray, y: np.ndarray, timing_runs: int = 0) -> dict:
    interp, runtime = _tflite_interpreter(path)
    ind, outd = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zp = ind["quantization"]
    out_scale, out_zp = outd["quantization"]
    preds = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        if ind["dtype"] == np.int8:
            xi = np.clip(np.round(xi / in_scale) + in_zp, -128, 127).astype(np.int8)
        interp.set_tensor(ind["index"], xi)
        interp.invoke()
        out = interp.get_tensor(outd["index"])
        if outd["dtype"] == np.int8:
            out = (out.astype(np.float32) - out_zp) * out_scale
        preds.append(int(out.argmax()))
    res = {
        "runtime": runtime,
        "accuracy": float((np.array(preds) == y).mean()),
        "input": _io_spec_tflite(ind),
        "output": _io_spec_tflite(outd),
        "signatures": interp.get_signature_list(),
    }
    if timing_runs:
        for _ in range(20):
            interp.invoke()
        t0 = time.perf_counter()
        for _ in range(timing_runs):
            interp.invoke()
        res["invoke_ms_1thread"] = (time.perf_counter() - t0) * 1000 / timing_runs
    return res


def eval_onnx(path: Path, x_nhwc: np.ndarray, y: np.ndarray, timing_runs: int = 0) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = x_nhwc.transpose(0, 3, 1, 2).copy()
    probs = sess.run(None, {"input": x})[0]
    i, o = sess.get_inputs()[0], sess.get_outputs()[0]
    res = {
        "runtime": f"onnxruntime {ort.__version__}",
        "accuracy": float((probs.argmax(-1) == y).mean()),
        "input": {"name": i.name, "shape": list(i.shape), "dtype": i.type, "layout": "NCHW"},
        "output": {"name": o.name, "shape": list(o.shape), "dtype": o.type, "layout": "NC"},
    }
    if timing_runs:
        x1 = x[:1]
        for _ in range(20):
            sess.run(None, {"input": x1})
        t0 = time.perf_counter()
        for _ in range(timing_runs):
            sess.run(None, {"input": x1})
        res["run_ms_1thread_batch1"] = (time.perf_counter() - t0) * 1000 / timing_runs
    return res


def evaluate_all(timing_runs: int = 200) -> dict:
    """Accuracy of every artifact on test_set.npz with LiteRT / onnxruntime (numpy only)."""
    with np.load(DIGITS_DIR / "test_set.npz") as z:
        x, y = z["x"], z["y"]
    x32 = upscale_digits(x, 32)
    out: dict = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "test_samples": int(x.shape[0]),
        "artifacts": {},
    }
    try:
        import ai_edge_litert

        out["ai_edge_litert"] = getattr(ai_edge_litert, "__version__", "unknown")
    except ImportError:
        out["ai_edge_litert"] = None
    arts = out["artifacts"]
    for name in ("digits_fp32.tflite", "digits_int8.tflite"):
        arts[f"digits/{name}"] = eval_tflite(DIGITS_DIR / name, x, y)
    for name in ("digits_fp32.onnx", "digits_int8.onnx"):
        arts[f"digits/{name}"] = eval_onnx(DIGITS_DIR / name, x, y)
    for name in ("digits32_fp32.tflite", "digits32_int8.tflite"):
        arts[f"digits32/{name}"] = eval_tflite(DIGITS32_DIR / name, x32, y, timing_runs)
    for name in ("digits32_fp32.onnx", "digits32_int8.onnx"):
        arts[f"digits32/{name}"] = eval_onnx(DIGITS32_DIR / name, x32, y, timing_runs)
    return out


# --------------------------------------------------------------------------- main


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_samples(x_te: np.ndarray, y_te: np.ndarray) -> list[Path]:
    """Five grayscale PNGs (first test sample of five distinct labels), pixel = round(x*255)."""
    from PIL import Image

    sdir = DIGITS_DIR / "samples"
    sdir.mkdir(parents=True, exist_ok=True)
    for old in sdir.glob("digit_*.png"):
        old.unlink()
    written, seen = [], set()
    for i in range(x_te.shape[0]):
        label = int(y_te[i])
        if label in seen:
            continue
        seen.add(label)
        px = np.round(x_te[i, :, :, 0] * 255.0).astype(np.uint8)
        p = sdir / f"digit_{label}_{i}.png"
        Image.fromarray(px, mode="L").save(p, optimize=False)
        written.append(p)
        if len(written) == 5:
            break
    return written


def build(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()
    seed_everything()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    timings: dict[str, float] = {}
    x_tr, x_te, y_tr, y_te = load_split()
    rng = np.random.default_rng(SEED)
    calib_idx = np.sort(rng.choice(x_tr.shape[0], CALIB_SAMPLES, replace=False))
    DIGITS_DIR.mkdir(parents=True, exist_ok=True)
    DIGITS32_DIR.mkdir(parents=True, exist_ok=True)

    labels = "".join(f"{i}\n" for i in range(NUM_CLASSES))
    (DIGITS_DIR / "labels.txt").write_text(labels)
    (DIGITS32_DIR / "labels.txt").write_text(labels)
    save_npz_deterministic(
        DIGITS_DIR / "test_set.npz", x=x_te.astype(np.float32), y=y_te.astype(np.int64)
    )
    write_samples(x_te, y_te)

    keras_acc: dict[str, float] = {}
    onnx_diff: dict[str, float] = {}

    # ---- digits (8x8x1)
    seed_everything()
    m = build_digits_keras()
    timings["train_digits_s"] = train(m, x_tr, y_tr, epochs=args.digits_epochs, lr=3e-3)
    keras_acc["digits"] = keras_accuracy(m, x_te, y_te)
    t0 = time.perf_counter()
    (DIGITS_DIR / "digits_fp32.tflite").write_bytes(to_tflite(m, (1, 8, 8, 1), None))
    (DIGITS_DIR / "digits_int8.tflite").write_bytes(to_tflite(m, (1, 8, 8, 1), x_tr[calib_idx]))
    import onnx

    onnx.save(digits_to_onnx(m), DIGITS_DIR / "digits_fp32.onnx")
    onnx_diff["digits"] = onnx_vs_keras(m, DIGITS_DIR / "digits_fp32.onnx", x_te)
    quantize_onnx(
        DIGITS_DIR / "digits_fp32.onnx",
        DIGITS_DIR / "digits_int8.onnx",
        x_tr[calib_idx].transpose(0, 3, 1, 2),
    )
    timings["export_digits_s"] = time.perf_counter() - t0

    # ---- digits32 (32x32x3, MobileNet-style)
    x32_tr, x32_te = upscale_digits(x_tr), upscale_digits(x_te)
    ref = tf.image.resize(x_te[:16], (32, 32), method="bilinear").numpy()
    resize_diff = float(np.abs(np.repeat(ref, 3, -1) - x32_te[:16]).max())
    assert resize_diff < 1e-5, f"upscale_digits differs from tf.image.resize by {resize_diff}"
    seed_everything()
    m32 = build_digits32_keras()
    timings["train_digits32_s"] = train(m32, x32_tr, y_tr, epochs=args.digits32_epochs, lr=3e-3)
    keras_acc["digits32"] = keras_accuracy(m32, x32_te, y_te)
    t0 = time.perf_counter()
    (DIGITS32_DIR / "digits32_fp32.tflite").write_bytes(to_tflite(m32, (1, 32, 32, 3), None))
    (DIGITS32_DIR / "digits32_int8.tflite").write_bytes(
        to_tflite(m32, (1, 32, 32, 3), x32_tr[calib_idx])
    )
    onnx.save(digits32_to_onnx(m32), DIGITS32_DIR / "digits32_fp32.onnx")
    onnx_diff["digits32"] = onnx_vs_keras(m32, DIGITS32_DIR / "digits32_fp32.onnx", x32_te)
    quantize_onnx(
        DIGITS32_DIR / "digits32_fp32.onnx",
        DIGITS32_DIR / "digits32_int8.onnx",
        x32_tr[calib_idx].transpose(0, 3, 1, 2),
    )
    timings["export_digits32_s"] = time.perf_counter() - t0

    for k, v in onnx_diff.items():
        if v >= 1e-4:
            raise SystemExit(f"{k}: ONNX export disagrees with Keras, max abs diff {v:.3g}")

    # ---- evaluate with the device runtimes
    t0 = time.perf_counter()
    eval_py = Path(args.eval_python)
    if eval_py.exists() and not args.in_process_eval:
        proc = subprocess.run(
            [str(eval_py), str(Path(__file__).resolve()), "--eval"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"--eval under {eval_py} failed (rc={proc.returncode})")
        ev = json.loads(proc.stdout.strip().splitlines()[-1])
        shown = eval_py.relative_to(REPO_ROOT) if eval_py.is_relative_to(REPO_ROOT) else eval_py
        ev["evaluated_with"] = str(shown)
    else:
        ev = evaluate_all()
        ev["evaluated_with"] = f"{sys.executable} (in-process; NOT the device venv)"
    timings["eval_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start

    files = sorted(p for d in (DIGITS_DIR, DIGITS32_DIR) for p in d.rglob("*") if p.is_file())
    summary = {
        "seed": SEED,
        "test_fraction": TEST_FRACTION,
        "calibration_samples": CALIB_SAMPLES,
        "build_versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "tensorflow": tf.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "scikit-learn": __import__("sklearn").__version__,
        },
        "keras_test_accuracy": keras_acc,
        "onnx_vs_keras_max_abs_diff": onnx_diff,
        "evaluation": {k: v for k, v in ev.items() if k != "artifacts"},
        "artifacts": {
            name: {
                k: v
                for k, v in res.items()
                if k not in ("invoke_ms_1thread", "run_ms_1thread_batch1")
            }
            for name, res in ev["artifacts"].items()
        },
        "files": {
            str(p.relative_to(MODELS_DIR)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in files
        },
    }
    # summary.json holds only what reruns reproduce (no timings, no latencies).
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    summary["latency_ms_1thread"] = {
        name: round(res.get("invoke_ms_1thread", res.get("run_ms_1thread_batch1")), 4)
        for name, res in ev["artifacts"].items()
        if "invoke_ms_1thread" in res or "run_ms_1thread_batch1" in res
    }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--eval",
        action="store_true",
        help="only evaluate the existing artifacts with LiteRT/onnxruntime; print JSON",
    )
    ap.add_argument(
        "--eval-python",
        default=str(DEFAULT_EVAL_PYTHON),
        help="device-venv interpreter used for evaluation (default: .venv/bin/python)",
    )
    ap.add_argument(
        "--in-process-eval",
        action="store_true",
        help="evaluate in this interpreter instead of the device venv",
    )
    ap.add_argument("--threads", type=int, default=2, help="TF intra/inter-op threads for training")
    ap.add_argument("--digits-epochs", type=int, default=40)
    ap.add_argument("--digits32-epochs", type=int, default=8)
    args = ap.parse_args()
    if args.eval:
        print(json.dumps(evaluate_all()))
        return
    summary = build(args)
    print(json.dumps({k: summary[k] for k in summary if k != "files"}, indent=2))
    print(json.dumps({"files": {k: v["bytes"] for k, v in summary["files"].items()}}, indent=2))


if __name__ == "__main__":
    main()
