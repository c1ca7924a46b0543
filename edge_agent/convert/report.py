"""The evaluation report: a versioned JSON document, a rich table, and the manifest summary."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from edge_agent.errors import ModelError
from edge_agent.manifest import EvaluationSummary, FileRef, GateResult, describe_validation_error

REPORT_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Strict):
    """One of the two models compared."""

    path: str
    format: str
    bytes: int
    sha256: str
    delegate: str
    inputs: list[str]
    outputs: list[str]


class Latency(_Strict):
    """Per-inference wall time through edge_agent.runtime, batch 1, on this machine."""

    p50_ms: float
    p95_ms: float
    mean_ms: float


class OutputComparison(_Strict):
    """Candidate vs reference on one output."""

    candidate_name: str
    reference_name: str
    max_abs_error: float
    mean_abs_error: float
    cosine_mean: float
    cosine_min: float
    worst_samples: list[int] = Field(description="Sample indices with the largest differences.")


class LayerError(_Strict):
    """How far one intermediate tensor of a QDQ model is from the float model's."""

    tensor: str
    sqnr_db: float = Field(description="Signal-to-quantization-noise ratio; low is bad.")


class EvaluationReport(_Strict):
    """Everything `edge-agent convert evaluate` measured."""

    schema_version: int = REPORT_SCHEMA_VERSION
    candidate: ModelInfo
    reference: ModelInfo
    data: str
    samples: int
    size_ratio: float
    latency: dict[str, Latency] = Field(description="'candidate' and 'reference'.")
    latency_ratio: float = Field(description="Candidate p50 / reference p50 (< 1: faster).")
    top1_agreement: float | None
    accuracy: float | None
    reference_accuracy: float | None
    accuracy_drop: float | None
    outputs: list[OutputComparison]
    worst_layers: list[LayerError] = Field(default_factory=list)
    worst_layers_note: str = ""
    measured_on: str
    gates: list[GateResult]
    passed: bool

    def summary(
        self, report_file: FileRef | None = None, forced: bool = False
    ) -> EvaluationSummary:
        """The part of the report a package manifest carries."""
        return EvaluationSummary(
            reference=Path(self.reference.path).name,
            reference_sha256=self.reference.sha256,
            samples=self.samples,
            top1_agreement=self.top1_agreement,
            accuracy=self.accuracy,
            reference_accuracy=self.reference_accuracy,
            size_ratio=self.size_ratio,
            latency_p50_ms=self.latency["candidate"].p50_ms,
            latency_p95_ms=self.latency["candidate"].p95_ms,
            reference_latency_p50_ms=self.latency["reference"].p50_ms,
            measured_on=self.measured_on,
            gates=self.gates,
            passed=self.passed,
            forced=forced,
            report=report_file,
        )


def load_report(path: Path) -> EvaluationReport:
    """Read an evaluation report written by ``evaluate --output``; ModelError if it is not one."""
    from pydantic import ValidationError

    try:
        return EvaluationReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such evaluation report") from None
    except ValidationError as exc:
        raise ModelError(
            f"{path}: not an evaluation report from `edge-agent convert evaluate`:"
            f"\n{describe_validation_error(exc)}"
        ) from None


def render(report: EvaluationReport, console: Console) -> None:
    """The report as tables: models, metrics, outputs, gates."""
    cand, ref = report.candidate, report.reference
    models = Table(title=f"evaluation on {report.samples} samples from {report.data}")
    for column in ("", "candidate", "reference"):
        models.add_column(column)
    models.add_row("model", Path(cand.path).name, Path(ref.path).name)
    models.add_row("size", _kb(cand.bytes), _kb(ref.bytes))
    models.add_row("runs on", cand.delegate, ref.delegate)
    lat_c, lat_r = report.latency["candidate"], report.latency["reference"]
    models.add_row(
        "latency p50 / p95",
        f"{lat_c.p50_ms:.3f} / {lat_c.p95_ms:.3f} ms",
        f"{lat_r.p50_ms:.3f} / {lat_r.p95_ms:.3f} ms",
    )
    if report.accuracy is not None and report.reference_accuracy is not None:
        models.add_row("accuracy", f"{report.accuracy:.4f}", f"{report.reference_accuracy:.4f}")
    console.print(models)
    console.print(
        f"size ratio {report.size_ratio:.3f}   latency ratio (p50) "
        f"{report.latency_ratio:.3f}   top-1 agreement "
        f"{_opt(report.top1_agreement)}   accuracy drop {_opt(report.accuracy_drop)}"
    )
    outputs = Table(title="outputs (candidate vs reference)")
    for column in (
        "output",
        "max |err|",
        "mean |err|",
        "cosine mean",
        "cosine min",
        "worst samples",
    ):
        outputs.add_column(column)
    for out in report.outputs:
        outputs.add_row(
            out.reference_name,
            f"{out.max_abs_error:.4g}",
            f"{out.mean_abs_error:.4g}",
            f"{out.cosine_mean:.5f}",
            f"{out.cosine_min:.5f}",
            ", ".join(map(str, out.worst_samples)),
        )
    console.print(outputs)
    if report.worst_layers:
        layers = Table(title="worst layers (QDQ vs float, lowest SQNR first)")
        layers.add_column("tensor")
        layers.add_column("SQNR dB")
        for layer in report.worst_layers:
            layers.add_row(layer.tensor, f"{layer.sqnr_db:.1f}")
        console.print(layers)
    elif report.worst_layers_note:
        console.print(f"[dim]worst layers: {report.worst_layers_note}[/dim]")
    for gate in report.gates:
        mark = "[green]PASS[/green]" if gate.passed else "[red]FAIL[/red]"
        console.print(
            f"{mark} {gate.name} = {_opt(gate.value)} (threshold {gate.threshold}; {gate.detail})"
        )
    verdict = "[green]gates passed[/green]" if report.passed else "[red]gates FAILED[/red]"
    console.print(verdict if report.gates else "[yellow]no gates were checked[/yellow]")


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
