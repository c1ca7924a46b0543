"""`edge-agent convert`: quantize, convert, evaluate, profile and package models (operator side).

The heavy tools (TensorFlow, onnx, onnx2tf) are imported only inside the subcommands that need
them, so this module imports on a device install; using a subcommand there says which extra to
install. Exit status: 0 done, 1 evaluation gates failed, 2 error (bad input, unsupported model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click
from rich.console import Console
from rich.table import Table

from edge_agent.cli import _params
from edge_agent.convert.calibration import DataSource
from edge_agent.convert.gates import Gates
from edge_agent.convert.options import (
    IntType,
    IOType,
    Method,
    Mode,
    Onnx2TFLiteOptions,
    QuantizeOptions,
    TFLiteMode,
    TFLiteOptions,
)
from edge_agent.telemetry.profile import DEFAULT_BINS

if TYPE_CHECKING:
    from edge_agent.convert.tflite import TFLiteResult

_QUANTIZE, _TFLITE, _ONNX2TFLITE = QuantizeOptions(), TFLiteOptions(), Onnx2TFLiteOptions()
_GATES = Gates()
"""Where the options take their defaults (the converters' option classes)."""

PATH = click.Path(path_type=Path)
EXISTING = click.Path(exists=True, path_type=Path)


def _console(as_json: bool) -> Console:
    return Console(stderr=as_json)


def _emit(data: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value, default=str))
    Console().print(table)


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _read_names(path: Path | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    return tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )


def _preprocessing(
    scale: float | None, mean: str | None, std: str | None
) -> tuple[tuple[str, object], ...]:
    def floats(text: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise click.BadParameter(f"{text!r}: give numbers separated by commas") from None

    pairs: list[tuple[str, object]] = []
    if scale is not None:
        pairs.append(("scale", scale))
    if mean is not None:
        pairs.append(("mean", floats(mean)))
    if std is not None:
        pairs.append(("std", floats(std)))
    return tuple(pairs)


def _model_specs(path: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
    """The model's input specs, with ``--input-shape`` applied (what the data is fitted to)."""
    from edge_agent.config import RuntimeSettings
    from edge_agent.runtime import load_model

    backend = load_model(path, RuntimeSettings(warmup_runs=0))
    specs = backend.inputs
    backend.close()
    if shapes:
        from edge_agent.convert.prepare import fixed_specs

        return fixed_specs(specs, shapes)
    return specs


def _input_shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    from edge_agent.convert.prepare import parse_input_shapes

    return parse_input_shapes(values)


INPUT_SHAPE = click.option(
    "--input-shape",
    "input_shape",
    multiple=True,
    help="Pin an input with open dimensions: NAME=1,3,48,192 (or 1,3,48,192 for a "
    "single input); repeat per input.",
)


@click.group()
def convert() -> None:
    r"""Turn a trained model into a verified edge package (pip install 'edge-agent[convert]').

    \b
    1. quantize / tflite / onnx2tflite   make the edge model
    2. evaluate   compare it with the original on held-out data; gates fail -> exit 1
    3. profile    the drift reference profile from sample data
    4. package    model + manifest + profile + evaluation, for the registry
    or: auto      all of it for every recipe a device class runs; packages the best
    See docs/convert.md for a walk-through.
    """


@convert.command()
@click.argument("model", type=EXISTING)
@click.option("-o", "--output", type=PATH, required=True, help="Quantized .onnx to write.")
@click.option(
    "--mode",
    type=click.Choice(["static", "dynamic"]),
    default=_QUANTIZE.mode,
    show_default=True,
    help="static: int8 activations calibrated on --calibration "
    "data (QDQ). dynamic: int8 weights, activations quantized at run time.",
)
@click.option("--calibration", type=EXISTING, help="Samples: image folder, .npy or .npz.")
@click.option(
    "--method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default=_QUANTIZE.method,
    show_default=True,
    help="Static calibration method.",
)
@click.option(
    "--per-channel/--per-tensor",
    default=_QUANTIZE.per_channel,
    show_default=True,
    help="Weight scales per output channel (more accurate) or per tensor.",
)
@click.option(
    "--activations",
    type=click.Choice(["int8", "uint8"]),
    default=_QUANTIZE.activations,
    show_default=True,
    help="int8 (S8S8) for ARM; uint8 (U8S8) is often faster on "
    "x86 without VNNI. `evaluate` shows which is faster where it runs.",
)
@click.option(
    "--exclude-nodes",
    multiple=True,
    help="Node names to keep in float (repeat or "
    "comma-separate); `evaluate` lists the worst layers.",
)
@click.option("--exclude-op-types", multiple=True, help="Op types to keep in float.")
@click.option("--op-types", multiple=True, help="Quantize only these op types.")
@click.option("--no-preprocess", is_flag=True, help="Skip quant_pre_process.")
@click.option(
    "--min-samples",
    type=int,
    default=_QUANTIZE.min_samples,
    show_default=True,
    help="Refuse to calibrate on fewer samples.",
)
@click.option("--max-samples", type=int, help="Use at most this many calibration samples.")
@INPUT_SHAPE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def quantize(
    model: Path,
    output: Path,
    mode: str,
    calibration: Path | None,
    method: str,
    per_channel: bool,
    activations: str,
    exclude_nodes: tuple[str, ...],
    exclude_op_types: tuple[str, ...],
    op_types: tuple[str, ...],
    no_preprocess: bool,
    min_samples: int,
    max_samples: int | None,
    input_shape: tuple[str, ...],
    as_json: bool,
) -> None:
    """Quantize an ONNX MODEL to int8 with onnxruntime.quantization."""
    from edge_agent.convert.quantize_onnx import quantize_onnx

    options = QuantizeOptions(
        mode=cast("Mode", mode),
        method=cast("Method", method),
        per_channel=per_channel,
        activations=cast("IntType", activations),
        exclude_nodes=_split(exclude_nodes),
        exclude_op_types=_split(exclude_op_types),
        op_types=_split(op_types),
        preprocess=not no_preprocess,
        min_samples=min_samples,
        input_shapes=_input_shapes(input_shape),
    )
    samples = None
    if calibration is not None:
        specs = _model_specs(model, options.input_shapes)
        samples = DataSource(calibration, max_samples).load(specs)
    result = quantize_onnx(model, output, options, samples, _console(as_json))
    _emit(
        {
            "output": str(result.output),
            "input_bytes": result.input_bytes,
            "output_bytes": result.output_bytes,
            "size_ratio": round(result.output_bytes / result.input_bytes, 4),
            "quantization": result.info.model_dump(exclude_none=True),
            "op_counts": result.op_counts,
            "float_compute_ops": result.float_compute_ops,
            "notes": result.notes,
        },
        as_json,
        "quantized",
    )


@convert.command()
@click.argument("model", type=EXISTING)
@click.option("-o", "--output", type=PATH, required=True, help=".tflite to write.")
@click.option(
    "--mode",
    type=click.Choice(["float32", "float16", "dynamic", "int8"]),
    default=_TFLITE.mode,
    show_default=True,
    help="int8: full integer, calibrated on "
    "--calibration data; dynamic: int8 weights only; float16: half-size weights.",
)
@click.option(
    "--io",
    "io_type",
    type=click.Choice(["int8", "uint8", "float32"]),
    default=_TFLITE.io_type,
    show_default=True,
    help="Input/output dtype of an int8 model.",
)
@click.option("--calibration", type=EXISTING, help="Representative samples (int8).")
@click.option(
    "--batch-size",
    type=int,
    default=_TFLITE.batch_size,
    show_default=True,
    help="Fixed batch size of a Keras model's TFLite signature.",
)
@click.option(
    "--allow-select-tf-ops",
    is_flag=True,
    help="Allow TensorFlow ops without a TFLite builtin (the device then needs the Flex delegate).",
)
@click.option("--min-samples", type=int, default=_TFLITE.min_samples, show_default=True)
@click.option("--max-samples", type=int, help="Use at most this many calibration samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tflite(
    model: Path,
    output: Path,
    mode: str,
    io_type: str,
    calibration: Path | None,
    batch_size: int,
    allow_select_tf_ops: bool,
    min_samples: int,
    max_samples: int | None,
    as_json: bool,
) -> None:
    """Convert a Keras MODEL (.keras/.h5) or a SavedModel directory to TFLite."""
    from edge_agent.convert.tflite import convert_to_tflite

    options = TFLiteOptions(
        mode=cast("TFLiteMode", mode),
        io_type=cast("IOType", io_type),
        batch_size=batch_size,
        allow_select_tf_ops=allow_select_tf_ops,
        min_samples=min_samples,
    )
    data = DataSource(calibration, max_samples) if calibration is not None else None
    result = convert_to_tflite(model, output, options, data, _console(as_json))
    _emit(_conversion_summary(result), as_json, "converted")


def _conversion_summary(result: TFLiteResult) -> dict[str, Any]:
    """What `tflite` and `onnx2tflite` print about the model they wrote."""
    return {
        "output": str(result.output),
        "output_bytes": result.output_bytes,
        "inputs": result.inputs,
        "outputs": result.outputs,
        "quantization": result.info.model_dump(exclude_none=True),
    }


@convert.command()
@click.argument("model", type=EXISTING)
@click.option("-o", "--output", type=PATH, required=True, help=".tflite to write.")
@click.option("--int8", "int8", is_flag=True, help="Full-integer int8 (needs --calibration).")
@click.option(
    "--io",
    "io_type",
    type=click.Choice(["int8", "float32"]),
    default=_ONNX2TFLITE.io_type,
    show_default=True,
    help="Input/output dtype of the int8 model.",
)
@click.option("--calibration", type=EXISTING, help="Representative samples (int8).")
@click.option("--min-samples", type=int, default=_ONNX2TFLITE.min_samples, show_default=True)
@click.option("--max-samples", type=int, help="Use at most this many calibration samples.")
@INPUT_SHAPE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def onnx2tflite(
    model: Path,
    output: Path,
    int8: bool,
    io_type: str,
    calibration: Path | None,
    min_samples: int,
    max_samples: int | None,
    input_shape: tuple[str, ...],
    as_json: bool,
) -> None:
    """Convert an ONNX MODEL to TFLite with onnx2tf (NCHW -> NHWC), optionally int8."""
    from edge_agent.convert.onnx2tflite import onnx_to_tflite

    shapes = _input_shapes(input_shape)
    samples = None
    if calibration is not None:
        samples = DataSource(calibration, max_samples).load(_model_specs(model, shapes))
    options = Onnx2TFLiteOptions(
        int8=int8,
        io_type=cast(Literal["int8", "float32"], io_type),
        min_samples=min_samples,
        input_shapes=shapes,
    )
    result = onnx_to_tflite(model, output, options, samples, _console(as_json))
    _emit(_conversion_summary(result), as_json, "converted")


@convert.command()
@click.argument("candidate", type=EXISTING)
@click.option("--reference", type=EXISTING, required=True, help="The original (float) model.")
@click.option(
    "--data",
    type=EXISTING,
    required=True,
    help="Held-out samples: image folder "
    "(class sub-folders give labels), .npy or .npz (a `y` array gives labels).",
)
@click.option(
    "--labels",
    "labels_file",
    type=EXISTING,
    help="Ground-truth class indices (.npy, or text with one integer per line, in data order).",
)
@click.option(
    "--class-names",
    type=EXISTING,
    help="Class names file ordering the sub-folders of an image folder.",
)
@click.option("--max-samples", type=int, help="Evaluate on at most this many samples.")
@click.option(
    "--min-agreement",
    type=float,
    default=_GATES.min_agreement,
    show_default=True,
    help="Gate: top-1 agreement with the reference (0 switches it off).",
)
@click.option(
    "--max-accuracy-drop",
    type=float,
    default=_GATES.max_accuracy_drop,
    show_default=True,
    help="Gate: accuracy points lost, absolute (0.01 = 1 point; needs labels).",
)
@click.option("--max-size-ratio", type=float, help="Gate: candidate / reference file size.")
@click.option("--min-cosine", type=float, help="Gate: lowest per-sample output cosine.")
@click.option("--threads", type=int, help="Threads per inference (default: the runtime's).")
@click.option("--no-layers", is_flag=True, help="Skip the per-layer error analysis.")
@click.option(
    "-o", "--output", type=PATH, help="Also write the JSON report here (for `package --eval`)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of tables.")
def evaluate(
    candidate: Path,
    reference: Path,
    data: Path,
    labels_file: Path | None,
    class_names: Path | None,
    max_samples: int | None,
    min_agreement: float,
    max_accuracy_drop: float,
    max_size_ratio: float | None,
    min_cosine: float | None,
    threads: int | None,
    no_layers: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """Compare CANDIDATE with --reference on --data; exit 1 when a gate fails."""
    from edge_agent._fs import write_atomically
    from edge_agent.convert.calibration import SampleSet, read_labels
    from edge_agent.convert.evaluate import EvaluateOptions, evaluate_models
    from edge_agent.convert.report import render
    from edge_agent.errors import InputError

    samples = DataSource(data, max_samples, _read_names(class_names)).load(_model_specs(candidate))
    if labels_file is not None:
        labels = read_labels(labels_file)
        if labels.shape[0] < samples.count:
            raise InputError(f"{labels_file}: {labels.shape[0]} labels for {samples.count} samples")
        samples = SampleSet(samples.arrays, samples.source, labels[: samples.count])
    gates = Gates(
        min_agreement=min_agreement or None,
        max_accuracy_drop=max_accuracy_drop,
        max_size_ratio=max_size_ratio,
        min_cosine=min_cosine,
    )
    report = evaluate_models(
        candidate,
        reference,
        samples,
        EvaluateOptions(gates=gates, threads=threads, layer_analysis=not no_layers),
        _console(as_json),
    )
    text = report.model_dump_json(indent=2)
    if output is not None:
        write_atomically(output, (text + "\n").encode())
    if as_json:
        click.echo(text)
    else:
        render(report, Console())
    if not report.passed:
        sys.exit(1)


@convert.command()
@click.argument("model", type=EXISTING)
@click.option(
    "--data",
    type=EXISTING,
    required=True,
    help="Reference samples (image folder, .npy or .npz), e.g. the training or calibration data.",
)
@click.option("-o", "--output", type=PATH, required=True, help="profile.json to write.")
@click.option(
    "--class-names", type=EXISTING, help="Class names (one per line) for the output distribution."
)
@click.option("--bins", type=int, default=DEFAULT_BINS, show_default=True, help="Histogram bins.")
@click.option("--max-samples", type=int, help="Profile at most this many samples.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def profile(
    model: Path,
    data: Path,
    output: Path,
    class_names: Path | None,
    bins: int,
    max_samples: int | None,
    as_json: bool,
) -> None:
    """Build the drift reference profile of MODEL's inputs and outputs on --data."""
    from edge_agent.convert.profiling import profile_model

    summary = profile_model(
        model,
        DataSource(data, max_samples),
        output,
        labels=_read_names(class_names),
        bins=bins,
        console=_console(as_json),
    )
    _emit(summary, as_json, "profile")


@convert.command()
@click.argument("model", type=EXISTING)
@click.option(
    "--name", type=_params.MODEL_NAME, required=True, help="Model name (lowercase, digits, . _ -)."
)
@click.option(
    "--version", "version", type=_params.VERSION, required=True, help="Version, e.g. 3 or 1.2.0."
)
@click.option("-o", "--output", type=PATH, required=True, help="Package directory to create.")
@click.option("--profile", "profile_file", type=EXISTING, help="From `convert profile`.")
@click.option("--eval", "eval_file", type=EXISTING, help="From `convert evaluate --output`.")
@click.option("--labels", "labels_file", type=EXISTING, help="Class names, one per line.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Device class it is meant for (device_configs/*.yaml name); repeat for several.",
)
@click.option(
    "--delegate",
    "delegates",
    multiple=True,
    help="Delegate or execution provider this variant is built for (e.g. edgetpu, tensorrt); "
    "devices whose config lists none of them never pick it. Repeat for several.",
)
@click.option("--min-agent-version", help="Oldest edge-agent that may load it (default: this).")
@click.option(
    "--scale",
    type=float,
    help="Preprocessing: raw values are multiplied by this (default for images 1/255).",
)
@click.option("--mean", help="Preprocessing: per-channel mean to subtract, comma-separated.")
@click.option("--std", help="Preprocessing: per-channel std to divide by, comma-separated.")
@click.option("--description", default="", help="Free text for operators.")
@click.option(
    "--force",
    is_flag=True,
    help="Package although gates failed / no evaluation; recorded in the manifest.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def package(
    model: Path,
    name: str,
    version: str,
    output: Path,
    profile_file: Path | None,
    eval_file: Path | None,
    labels_file: Path | None,
    targets: tuple[str, ...],
    delegates: tuple[str, ...],
    min_agent_version: str | None,
    scale: float | None,
    mean: str | None,
    std: str | None,
    description: str,
    force: bool,
    as_json: bool,
) -> None:
    """Write MODEL, its manifest, profile and evaluation into a package directory."""
    from edge_agent import __version__
    from edge_agent.convert.package import PackageRequest, build_package

    manifest = build_package(
        PackageRequest(
            model=model,
            name=name,
            version=version,
            output=output,
            profile=profile_file,
            evaluation=eval_file,
            class_names=labels_file,
            target_devices=_split(targets),
            target_delegates=_split(delegates),
            min_agent_version=min_agent_version or __version__,
            description=description,
            force=force,
            preprocessing_overrides=_preprocessing(scale, mean, std),
        )
    )
    if as_json:
        click.echo(manifest.model_dump_json(indent=2, exclude_none=True))
        return
    forced = manifest.evaluation is not None and manifest.evaluation.forced
    Console().print(
        f"[green]packaged[/green] {manifest.name} {manifest.version} "
        f"({manifest.format}, {manifest.quantization.scheme}) in {output}"
        + (" [red](FORCED past failed gates)[/red]" if forced else "")
    )


def _register_auto() -> None:
    """`convert auto` lives in its own module (it imports the helpers above)."""
    from edge_agent.cli.convert_auto_cmd import auto

    convert.add_command(auto)


_register_auto()
