"""`edge-agent convert auto`: every recipe a device class runs, evaluated; the best packaged.

The work is in ``edge_agent.convert.auto`` (building and measuring) and
``edge_agent.convert.selection`` (the choice); this module parses options, packages the winner
and prints the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.table import Table

from edge_agent.cli.convert_cmd import (
    EXISTING,
    INPUT_SHAPE,
    PATH,
    _console,
    _input_shapes,
    _read_names,
    _split,
)
from edge_agent.convert.calibration import DataSource


@click.command()
@click.argument("model", type=EXISTING)
@click.option("--calibration", type=EXISTING, required=True, help="Calibration samples.")
@click.option("--data", type=EXISTING, required=True, help="Held-out evaluation samples.")
@click.option(
    "--target",
    required=True,
    help="Device class (device_configs/*.yaml name): decides which recipes are tried.",
)
@INPUT_SHAPE
@click.option(
    "--recipes",
    multiple=True,
    help="Try only these recipes (comma-separate or repeat); see docs/convert.md.",
)
@click.option(
    "--objective",
    type=click.Choice(["smallest", "fastest"]),
    default="smallest",
    show_default=True,
    help="smallest within --max-latency-ratio, or fastest within --max-size-ratio.",
)
@click.option(
    "--max-latency-ratio",
    type=float,
    default=1.25,
    show_default=True,
    help="Budget: candidate p50 / float p50 on this machine (0: none).",
)
@click.option("--max-size-ratio", type=float, help="Budget: candidate / float file size.")
@click.option("--min-agreement", type=float, default=0.99, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True)
@click.option("--min-cosine", type=float, default=0.98, show_default=True, help="0: off.")
@click.option("--class-names", type=EXISTING, help="Orders the class sub-folders of --data.")
@click.option("--max-calibration-samples", type=int, default=128, show_default=True)
@click.option("--max-samples", type=int, default=100, show_default=True, help="Evaluation.")
@click.option("--threads", type=int, default=1, show_default=True, help="While measuring.")
@click.option("--work-dir", type=PATH, help="Keep every candidate here (default: a temp dir).")
@click.option("-o", "--output", type=PATH, help="Package the winner into this directory.")
@click.option("--name", help="Package name (with -o).")
@click.option("--version", "version", help="Package version (with -o).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def auto(
    model: Path,
    calibration: Path,
    data: Path,
    target: str,
    input_shape: tuple[str, ...],
    recipes: tuple[str, ...],
    objective: str,
    max_latency_ratio: float,
    max_size_ratio: float | None,
    min_agreement: float,
    max_accuracy_drop: float,
    min_cosine: float,
    class_names: Path | None,
    max_calibration_samples: int,
    max_samples: int,
    threads: int,
    work_dir: Path | None,
    output: Path | None,
    name: str | None,
    version: str | None,
    as_json: bool,
) -> None:
    """Try every recipe --target can run on the float ONNX MODEL; package the best that passes.

    Exit 0 when a candidate qualified (and was packaged with -o), 1 when none did.
    """
    import tempfile

    from edge_agent.convert.auto import AutoOptions, auto_convert
    from edge_agent.convert.gates import Gates
    from edge_agent.convert.selection import Budget, Objective
    from edge_agent.errors import InputError

    if output is not None and not (name and version):
        raise InputError("-o/--output packages the winner: give --name and --version too")
    options = AutoOptions(
        target=target,
        recipes=_split(recipes),
        budget=Budget(
            objective=cast("Objective", objective),
            max_latency_ratio=max_latency_ratio or None,
            max_size_ratio=max_size_ratio,
        ),
        gates=Gates(
            min_agreement=min_agreement or None,
            max_accuracy_drop=max_accuracy_drop,
            min_cosine=min_cosine or None,
        ),
        input_shapes=_input_shapes(input_shape),
        threads=threads,
    )
    console = _console(as_json)
    with tempfile.TemporaryDirectory(prefix="edge-agent-auto-") as tmp:
        work = work_dir or Path(tmp)
        result = auto_convert(
            model,
            work,
            DataSource(calibration, max_calibration_samples),
            DataSource(data, max_samples, _read_names(class_names)),
            options,
            console,
        )
        packaged = None
        if result.winner_file is not None and output is not None:
            packaged = _package_winner(result, work, calibration, output, name, version, target)
        report = result.as_dict() | {"package": str(packaged) if packaged else None}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _render_auto(report, Console())
    if result.winner is None:
        sys.exit(1)


def _package_winner(
    result: Any,
    work: Path,
    calibration: Path,
    output: Path,
    name: str | None,
    version: str | None,
    target: str,
) -> Path:
    """Profile the winner on the calibration data and package it with its evaluation."""
    from edge_agent.convert.package import PackageRequest, build_package
    from edge_agent.convert.profiling import profile_model

    assert result.winner_file is not None and name and version
    profile = work / "profile.json"
    profile_model(result.winner_file, DataSource(calibration, 256), profile)
    build_package(
        PackageRequest(
            model=result.winner_file,
            name=name,
            version=version,
            output=output,
            profile=profile,
            evaluation=result.winner_report,
            target_devices=(target,),
            description=f"convert auto ({result.winner}) from {Path(result.model).name}",
        )
    )
    return output


def _render_auto(report: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"convert auto: {Path(report['model']).name} (opset {report['opset']}) for "
        f"{report['target']}, {report['evaluation_samples']} held-out samples"
    )
    for column in ("recipe", "size", "latency", "agreement", "min cosine", "verdict"):
        table.add_column(column)

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    for row in report["rows"]:
        cosine = min(row["cosine_min"].values(), default=None)
        table.add_row(
            ("[green]" if row["chosen"] else "") + row["recipe"],
            ratio(row["size_ratio"]),
            ratio(row["latency_ratio"]),
            "-" if row["top1_agreement"] is None else f"{row['top1_agreement']:.3f}",
            "-" if cosine is None else f"{cosine:.4f}",
            row["reason"],
        )
    console.print(table)
    for recipe, why in report["skipped"].items():
        console.print(f"[dim]skipped {recipe}: {why}[/dim]")
    for note in report["notes"]:
        console.print(f"[dim]note: {note}[/dim]")
    if report["winner"] is None:
        console.print("[red]no candidate passed the gates within budget: nothing packaged[/red]")
    elif report["package"]:
        console.print(f"[green]packaged[/green] {report['winner']} in {report['package']}")
    else:
        console.print(f"[green]best:[/green] {report['winner']} (give -o to package it)")
