"""`edge-agent doctor | infer | bench`: the runtime layer from the command line."""

from __future__ import annotations

import json
import time
import typing
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from edge_agent.config import (
    DelegateFailurePolicy,
    LiteRTDelegate,
    LiteRTDelegateName,
    OnnxProvider,
    OnnxProviderName,
    RuntimeSettings,
    resolve_device_config,
)
from edge_agent.runtime.tools.bench import DEFAULT_RUNS, DEFAULT_WARMUP_RUNS

_LITERT_DELEGATES = frozenset(typing.get_args(LiteRTDelegateName))
_ONNX_PROVIDERS = frozenset(typing.get_args(OnnxProviderName))
_DELEGATES = sorted(_LITERT_DELEGATES | _ONNX_PROVIDERS)
"""Every name ``--delegate`` accepts: the config schema's delegate and provider names."""

device_option = click.option(
    "--device",
    "device",
    default="auto",
    show_default=True,
    metavar="NAME|FILE",
    help="Device config: a shipped class (rpi4, rpi5, rpi5-coral, jetson-orin-nano, "
    "jetson-nano, x86-generic), a YAML file, or auto-detect.",
)
delegate_option = click.option(
    "--delegate",
    type=click.Choice(_DELEGATES),
    default=None,
    help="Use this delegate / provider instead of the device config's preference list "
    "(falls back to CPU unless --strict).",
)
library_option = click.option(
    "--delegate-library",
    type=str,
    default=None,
    metavar="SO",
    help="Library of the LiteRT delegate (required with --delegate external).",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=None,
    help="Threads per inference (default: the device config's).",
)
strict_option = click.option(
    "--strict", is_flag=True, help="Fail instead of falling back when the delegate cannot run."
)


def runtime_settings(
    device: str, delegate: str | None, library: str | None, threads: int | None, strict: bool
) -> RuntimeSettings:
    """The device config's runtime settings with the command line's overrides applied."""
    config, _ = resolve_device_config(device)
    settings = config.runtime.model_copy(deep=True)
    if threads is not None:
        settings.threads = threads
    policy: DelegateFailurePolicy = "fail" if strict else settings.on_delegate_failure
    settings.on_delegate_failure = policy
    if delegate is not None:
        # a name both runtimes know (xnnpack, cpu) applies to both
        if delegate in _LITERT_DELEGATES:
            settings.litert.delegates = [LiteRTDelegate(name=delegate, library=library)]  # type: ignore[arg-type]
        if delegate in _ONNX_PROVIDERS:
            settings.onnx.providers = [OnnxProvider(name=delegate)]  # type: ignore[arg-type]
    return settings


@click.command()
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(device: str, as_json: bool) -> None:
    """Show runtimes, delegates / execution providers (really loaded) and sensors found.

    A delegate is `ok` only when a tiny probe model actually runs on it; `missing` means it is
    not installed here, `failed` that it is present but could not run.
    """
    from edge_agent.runtime.tools.doctor import diagnose

    config, source = resolve_device_config(device)
    report = diagnose(config, source)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    console = Console()
    console.print(
        f"[bold]edge-agent {report.edge_agent}[/] · Python {report.python} · {report.platform}"
    )
    console.print(f"device class [bold]{report.device_class}[/] from {report.device_config}\n")
    for title, checks in (
        ("Runtimes", report.runtimes),
        ("LiteRT delegates", report.litert_delegates),
        ("ONNX Runtime execution providers", report.onnx_providers),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for check in checks:
            colour = {"ok": "green", "missing": "yellow"}.get(check.status, "red")
            table.add_row(check.name, f"[{colour}]{check.status}[/]", check.detail)
        console.print(table)
    table = Table(title="Sensors", title_justify="left")
    table.add_column("sensor")
    table.add_column("reading", overflow="fold")
    for key, value in report.sensors.items():
        table.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    console.print(table)


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Input file: .npy, .npz (one array per input name) or an image "
    "(resized to the model's input and scaled to [0, 1]).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the raw output tensors to this .npz, keyed by output name.",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    default=None,
    help="Class labels, one per line (default: labels.txt beside the model).",
)
@click.option(
    "--top-k",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many classes to show for classifier outputs.",
)
@click.option("--raw", is_flag=True, help="Return quantized outputs as stored integers.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@device_option
@delegate_option
@library_option
@threads_option
@strict_option
def infer(
    model_path: Path,
    input_path: Path,
    output_path: Path | None,
    labels: Path | None,
    top_k: int,
    raw: bool,
    as_json: bool,
    device: str,
    delegate: str | None,
    delegate_library: str | None,
    threads: int | None,
    strict: bool,
) -> None:
    """Run MODEL (.tflite or .onnx) once on an input file and show what it says.

    Classifier outputs (one row of scores) are shown as the top-k classes with labels; other
    outputs as shape and value range. Use --output to keep the raw tensors.
    """
    from edge_agent.runtime import load_model
    from edge_agent.runtime.tools.inputs import read_inputs

    settings = runtime_settings(device, delegate, delegate_library, threads, strict)
    model = load_model(model_path, settings)
    try:
        inputs = read_inputs(input_path, model.inputs)
        start = time.perf_counter()
        outputs = model.run(inputs, dequantize=not raw)
        latency_ms = (time.perf_counter() - start) * 1000
    finally:
        model.close()
    label_names = _read_labels(labels or model_path.parent / "labels.txt", explicit=bool(labels))
    result = {
        "model": str(model_path),
        "delegate": model.delegate.name,
        "latency_ms": round(latency_ms, 3),
        "outputs": {
            name: _describe_output(value, label_names, top_k) for name, value in outputs.items()
        },
    }
    if output_path is not None:
        np.savez(output_path, **outputs)  # type: ignore[arg-type]  # numpy's stub types **kwds badly
        result["saved_to"] = str(output_path)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console = Console()
    console.print(f"{model_path} on [bold]{model.delegate.name}[/] in {latency_ms:.2f} ms")
    for name, summary in result["outputs"].items():  # type: ignore[attr-defined]
        if "top_k" in summary:
            table = Table(title=f"{name}: top {len(summary['top_k'])}", title_justify="left")
            table.add_column("rank", justify="right")
            table.add_column("class")
            table.add_column("score", justify="right")
            for rank, entry in enumerate(summary["top_k"], start=1):
                table.add_row(str(rank), entry["label"], f"{entry['score']:.4f}")
            console.print(table)
        else:
            console.print(
                f"{name}: {summary['dtype']}{summary['shape']} "
                f"min {summary['min']:.4g} max {summary['max']:.4g} "
                f"mean {summary['mean']:.4g}"
            )
    if output_path is not None:
        console.print(f"raw outputs saved to {output_path}")


def _read_labels(path: Path, explicit: bool) -> list[str] | None:
    if not path.exists():
        if explicit:
            raise click.BadParameter(f"{path}: no such labels file", param_hint="--labels")
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _describe_output(value: np.ndarray, labels: list[str] | None, top_k: int) -> dict[str, Any]:
    summary: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
    scores = np.asarray(value, dtype=np.float64)
    if scores.size:
        summary.update(min=float(scores.min()), max=float(scores.max()), mean=float(scores.mean()))
    if value.ndim == 2 and value.shape[0] == 1 and value.shape[1] > 1:
        row = scores[0]
        order = np.argsort(row)[::-1][:top_k]
        summary["top_k"] = [
            {
                "index": int(i),
                "label": labels[i] if labels and i < len(labels) else str(i),
                "score": float(row[i]),
            }
            for i in order
        ]
    return summary


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--runs",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULT_RUNS,
    show_default=True,
    help="Timed inferences.",
)
@click.option(
    "--warmup",
    type=click.IntRange(0, 100_000),
    default=DEFAULT_WARMUP_RUNS,
    show_default=True,
    help="Untimed inferences before timing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@device_option
@delegate_option
@library_option
@threads_option
@strict_option
def bench(
    model_path: Path,
    runs: int,
    warmup: int,
    as_json: bool,
    device: str,
    delegate: str | None,
    delegate_library: str | None,
    threads: int | None,
    strict: bool,
) -> None:
    """Benchmark MODEL on this device: load time, latency percentiles, throughput, memory.

    Inputs are random, of the model's shapes and dtypes; the delegate is chosen as the agent
    would (device config), or forced with --delegate.
    """
    from edge_agent.runtime.tools.bench import benchmark

    settings = runtime_settings(device, delegate, delegate_library, threads, strict)
    if as_json:
        result = benchmark(model_path, settings, runs=runs, warmup_runs=warmup)
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("benchmarking", total=runs)
        result = benchmark(
            model_path,
            settings,
            runs=runs,
            warmup_runs=warmup,
            progress=lambda n: progress.advance(task, n),
        )
    table = Table(
        title=f"{model_path} · {result.format} on {result.delegate}", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("delegate chain", result.delegate_detail)
    if result.node_placement:
        table.add_row(
            "nodes per provider", ", ".join(f"{k}: {v}" for k, v in result.node_placement.items())
        )
    for skipped in result.skipped_delegates:
        table.add_row(f"skipped {skipped['name']}", skipped["reason"][:80])
    table.add_row("load (incl. load-time warm-up)", f"{result.load_ms:.1f} ms")
    table.add_row("first run", f"{result.first_run_ms:.3f} ms")
    for key in ("min", "p50", "p90", "p99", "max"):
        table.add_row(f"latency {key}", f"{result.latency_ms[key]:.3f} ms")
    table.add_row("throughput", f"{result.throughput_per_s:.1f} inferences/s")
    table.add_row(
        "memory after load",
        f"{result.rss_after_mib:.1f} MiB "
        f"(+{result.rss_after_mib - result.rss_before_load_mib:.1f})",
    )
    table.add_row("peak memory", f"{result.peak_rss_mib:.1f} MiB")
    Console().print(table)
