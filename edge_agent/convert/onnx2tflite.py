"""ONNX -> TFLite through onnx2tf (which turns NCHW graphs into NHWC ones), optionally int8.

What onnx2tf needs that is easy to get wrong (each was seen on real models):

* it downloads sample data from the internet to calibrate int8 unless it is given its own: we
  always pass our calibration samples (``custom_input_op_name_np_data_path``, NHWC), so it never
  goes online;
* it calls ``onnxsim`` as a program: the interpreter's ``bin`` directory goes on PATH;
* it rejects node names containing ``@`` and needs every node named: it converts a sanitised
  copy, never the user's file;
* it writes several files into a folder; we take the one asked for and load it with the
  device runtime before returning.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edge_agent._fs import write_atomically
from edge_agent.config import RuntimeSettings
from edge_agent.convert.calibration import SampleSet, feeds_for, require_samples
from edge_agent.convert.deps import require
from edge_agent.convert.inspect_model import layout_of
from edge_agent.convert.options import Onnx2TFLiteOptions
from edge_agent.convert.prepare import Shapes, fix_input_shapes, shape_has_open_dims
from edge_agent.convert.progress import steps
from edge_agent.convert.tflite import TFLiteResult
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import CalibrationInfo, QuantizationInfo
from edge_agent.runtime import load_model

_UNSAFE = re.compile(r"[^0-9A-Za-z_.:/-]")


ONNX2TF_FILES = {
    "float32": "model_float32.tflite",
    "float16": "model_float16.tflite",
    "dynamic": "model_dynamic_range_quant.tflite",
    "int8_float_io": "model_integer_quant.tflite",
    "full_integer": "model_full_integer_quant.tflite",
}
"""What one onnx2tf run writes (the int8 ones only with calibration data), by our name."""


def onnx_to_tflite(
    source: Path,
    output: Path,
    options: Onnx2TFLiteOptions,
    samples: SampleSet | None,
    console: Console | None = None,
) -> TFLiteResult:
    """Convert ``source`` to ``output`` with onnx2tf; raises InputError / ModelError."""
    if options.int8 and samples is None:
        raise InputError(
            "int8 conversion calibrates on sample data: give --calibration DATA "
            "(onnx2tf would otherwise download sample images from the internet)"
        )
    with tempfile.TemporaryDirectory(prefix="edge-agent-onnx2tf-") as tmp:
        produced = run_onnx2tf(
            source,
            Path(tmp),
            samples,
            int8=options.int8,
            min_samples=options.min_samples,
            input_shapes=options.input_shapes,
            console=console,
        )
        kind = (
            "float32"
            if not options.int8
            else "full_integer"
            if options.io_type == "int8"
            else "int8_float_io"
        )
        if kind not in produced:
            raise ModelError(f"{source}: onnx2tf finished without writing {ONNX2TF_FILES[kind]}")
        write_atomically(output, produced[kind].read_bytes())
    backend = load_model(output, RuntimeSettings())
    try:
        inputs = [spec.describe() for spec in backend.inputs]
        outputs = [spec.describe() for spec in backend.outputs]
    finally:
        backend.close()
    calibration = None
    if options.int8 and samples is not None:
        calibration = CalibrationInfo(
            method="minmax", samples=samples.count, source=Path(samples.source).name
        )
    return TFLiteResult(
        output=output,
        output_bytes=output.stat().st_size,
        info=onnx2tf_quantization(kind, calibration),
        inputs=inputs,
        outputs=outputs,
    )


def onnx2tf_quantization(kind: str, calibration: CalibrationInfo | None) -> QuantizationInfo:
    """How a file of ``ONNX2TF_FILES[kind]`` is quantized, as the manifest records it."""
    onnx2tf = require("onnx2tf", "ONNX -> TFLite conversion")
    tool = f"onnx2tf {getattr(onnx2tf, '__version__', '?')}"
    if kind == "float32":
        return QuantizationInfo(
            scheme="float32", weights="float32", activations="float32", tool=tool
        )
    if kind == "float16":
        return QuantizationInfo(
            scheme="float16", weights="float16", activations="float32", tool=tool
        )
    if kind == "dynamic":
        return QuantizationInfo(
            scheme="dynamic", weights="int8", activations="dynamic", per_channel=True, tool=tool
        )
    return QuantizationInfo(
        scheme="full-integer" if kind == "full_integer" else "static",
        weights="int8",
        activations="int8",
        per_channel=True,
        calibration=calibration,
        tool=tool,
    )


def run_onnx2tf(
    source: Path,
    work: Path,
    samples: SampleSet | None,
    *,
    int8: bool,
    min_samples: int = 16,
    input_shapes: Shapes | None = None,
    console: Console | None = None,
) -> dict[str, Path]:
    """One onnx2tf run in ``work``: every file it wrote, by ``ONNX2TF_FILES`` key.

    With ``int8`` it also writes the int8 variants, calibrated on ``samples``. Raises ModelError
    when onnx2tf stops (it exits on ops it cannot convert) and InputError for bad samples.
    """
    onnx = require("onnx", "ONNX -> TFLite conversion")
    onnx2tf = require("onnx2tf", "ONNX -> TFLite conversion")
    work = work.resolve()  # onnx2tf runs with it as the working directory
    clean = work / "model.onnx"
    model = sanitised(onnx, source)
    if input_shapes or _has_open_dims(model):
        model, _ = fix_input_shapes(model, input_shapes or {})
    onnx.save(model, str(clean))
    specs = _specs(clean)
    kwargs: dict[str, Any] = {
        "input_onnx_file_path": str(clean),
        "output_folder_path": str(work / "out"),
        "copy_onnx_input_output_names_to_tflite": True,
        "non_verbose": True,
    }
    nhwc = [spec.name for spec in specs if layout_of(spec) == "NHWC"]
    if nhwc:  # onnx2tf would take [1, 24, 24, 3] for NCHW and transpose it to [1, 24, 3, 24]
        kwargs["keep_nwc_or_nhwc_or_ndhwc_input_names"] = nhwc
    _offline_check_data(samples, specs, work)
    if int8:
        if samples is None:
            raise InputError("int8 conversion calibrates on sample data: give --calibration DATA")
        require_samples(samples, min_samples, "int8 calibration")
        kwargs["output_integer_quantized_tflite"] = True
        kwargs["custom_input_op_name_np_data_path"] = _calibration_files(samples, specs, work)
    with (
        steps("converting with onnx2tf", None, console),
        _tool_path(),
        _working_directory(work),
        contextlib.redirect_stdout(sys.stderr),
    ):
        try:
            with warnings.catch_warnings():
                # onnx2tf checks its result with TF's deprecated tf.lite.Interpreter
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                onnx2tf.convert(**kwargs)
        except BaseException as exc:  # onnx2tf calls sys.exit(1) on unsupported ops
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ModelError(
                f"{source}: onnx2tf could not convert the model "
                f"({type(exc).__name__}: {exc}); its log above names the "
                "op it stopped at"
            ) from None
    return {
        kind: work / "out" / name
        for kind, name in ONNX2TF_FILES.items()
        if (work / "out" / name).is_file()
    }


def _has_open_dims(model: Any) -> bool:
    initializers = {init.name for init in model.graph.initializer}
    return any(
        shape_has_open_dims(value, besides_batch=True)
        for value in model.graph.input
        if value.name not in initializers
    )


def sanitised(onnx: Any, source: Path) -> Any:
    """A copy of the model with every node named and no character onnx2tf rejects in names."""
    try:
        model = onnx.load(str(source))
    except Exception as exc:
        raise ModelError(f"{source}: not a readable ONNX model: {exc}") from None
    renamed: dict[str, str] = {}

    def clean(name: str) -> str:
        if not name or not _UNSAFE.search(name):
            return name
        return renamed.setdefault(name, _UNSAFE.sub("_", name))

    graph = model.graph
    for index, node in enumerate(graph.node):
        node.name = clean(node.name) or f"{node.op_type}_{index}"
        node.input[:] = [clean(n) for n in node.input]
        node.output[:] = [clean(n) for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = clean(value.name)
    for init in graph.initializer:
        init.name = clean(init.name)
    return model


def _specs(source: Path) -> Any:
    backend = load_model(source, RuntimeSettings(warmup_runs=0))
    try:
        return backend.inputs
    finally:
        backend.close()


def _calibration_files(samples: SampleSet, specs: Any, work: Path) -> list[list[Any]]:
    """onnx2tf's [[input name, .npy path, mean, std], ...], data in NHWC, identity mean/std."""
    feeds = feeds_for(samples, specs)
    entries: list[list[Any]] = []
    for index, spec in enumerate(specs):
        array = feeds[spec.name]
        if array.ndim == 4 and layout_of(spec) != "NHWC":
            array = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
        path = work / f"calibration_{index}.npy"
        np.save(path, array.astype(np.float32))
        channels = array.shape[-1] if array.ndim == 4 else 1
        entries.append([spec.name, str(path), [0.0] * channels, [1.0] * channels])
    return entries


CHECK_DATA_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
"""onnx2tf checks a model whose inputs are all [small batch, H, W, 3] on sample images it
downloads from GitHub, unless a file of this name is in the working directory."""


def _offline_check_data(samples: SampleSet | None, specs: Any, work: Path) -> None:
    """Write onnx2tf's check images from our samples (mid-grey without any), so it stays offline."""
    images = np.full((20, 128, 128, 3), 0.5, np.float32)
    if samples is not None and len(specs) == 1:
        array = feeds_for(samples, specs)[specs[0].name]
        if array.ndim == 4 and layout_of(specs[0]) != "NHWC":
            array = array.transpose(0, 2, 3, 1)
        if array.ndim == 4 and array.shape[-1] == 3:
            cv2 = require("cv2", "ONNX -> TFLite conversion")
            for index in range(20):
                sample = np.asarray(array[index % array.shape[0]], np.float32)
                images[index] = cv2.resize(sample, (128, 128), interpolation=cv2.INTER_AREA)
    np.save(work / CHECK_DATA_FILE, images)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """Run onnx2tf in ``path`` (it looks for CHECK_DATA_FILE in the working directory)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _tool_path() -> Iterator[None]:
    """The interpreter's bin directory on PATH (onnx2tf runs onnxsim as a program)."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + before
    try:
        yield
    finally:
        os.environ["PATH"] = before
