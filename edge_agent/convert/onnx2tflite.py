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
from edge_agent.convert.options import Onnx2TFLiteOptions
from edge_agent.convert.progress import steps
from edge_agent.convert.tflite import TFLiteResult
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import CalibrationInfo, QuantizationInfo
from edge_agent.runtime import load_model

_UNSAFE = re.compile(r"[^0-9A-Za-z_.:/-]")


def onnx_to_tflite(
    source: Path,
    output: Path,
    options: Onnx2TFLiteOptions,
    samples: SampleSet | None,
    console: Console | None = None,
) -> TFLiteResult:
    """Convert ``source`` to ``output`` with onnx2tf; raises InputError / ModelError."""
    onnx = require("onnx", "ONNX -> TFLite conversion")
    onnx2tf = require("onnx2tf", "ONNX -> TFLite conversion")
    if options.int8 and samples is None:
        raise InputError(
            "int8 conversion calibrates on sample data: give --calibration DATA "
            "(onnx2tf would otherwise download sample images from the internet)"
        )
    with tempfile.TemporaryDirectory(prefix="edge-agent-onnx2tf-") as tmp:
        work = Path(tmp)
        clean = work / "model.onnx"
        onnx.save(sanitised(onnx, source), str(clean))
        specs = _specs(clean)
        kwargs: dict[str, Any] = {
            "input_onnx_file_path": str(clean),
            "output_folder_path": str(work / "out"),
            "copy_onnx_input_output_names_to_tflite": True,
            "non_verbose": True,
        }
        calibration = None
        if options.int8:
            assert samples is not None
            require_samples(samples, options.min_samples, "int8 calibration")
            kwargs["output_integer_quantized_tflite"] = True
            kwargs["custom_input_op_name_np_data_path"] = _calibration_files(samples, specs, work)
            calibration = CalibrationInfo(
                method="minmax", samples=samples.count, source=Path(samples.source).name
            )
        with (
            steps("converting with onnx2tf", None, console),
            _tool_path(),
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
        suffix = (
            "float32"
            if not options.int8
            else "full_integer_quant"
            if options.io_type == "int8"
            else "integer_quant"
        )
        produced = work / "out" / f"model_{suffix}.tflite"
        if not produced.is_file():
            raise ModelError(f"{source}: onnx2tf finished without writing {produced.name}")
        write_atomically(output, produced.read_bytes())
    backend = load_model(output, RuntimeSettings())
    try:
        inputs = [spec.describe() for spec in backend.inputs]
        outputs = [spec.describe() for spec in backend.outputs]
    finally:
        backend.close()
    tool = f"onnx2tf {getattr(onnx2tf, '__version__', '?')}"
    if not options.int8:
        info = QuantizationInfo(
            scheme="float32", weights="float32", activations="float32", tool=tool
        )
    else:
        info = QuantizationInfo(
            scheme="full-integer" if options.io_type == "int8" else "static",
            weights="int8",
            activations="int8",
            per_channel=True,
            calibration=calibration,
            tool=tool,
        )
    return TFLiteResult(
        output=output, output_bytes=output.stat().st_size, info=info, inputs=inputs, outputs=outputs
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
        if array.ndim == 4:
            array = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
        path = work / f"calibration_{index}.npy"
        np.save(path, array.astype(np.float32))
        channels = array.shape[-1] if array.ndim == 4 else 1
        entries.append([spec.name, str(path), [0.0] * channels, [1.0] * channels])
    return entries


@contextlib.contextmanager
def _tool_path() -> Iterator[None]:
    """The interpreter's bin directory on PATH (onnx2tf runs onnxsim as a program)."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + before
    try:
        yield
    finally:
        os.environ["PATH"] = before
