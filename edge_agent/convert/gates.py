"""Evaluation gates: the pass/fail decision on a candidate, as a pure function.

A quantized model that silently loses accuracy is the failure this exists to stop, so every gate
that cannot be measured when it was asked for fails rather than passing by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.manifest import GateResult


@dataclass(frozen=True)
class Gates:
    """Thresholds; None switches a gate off."""

    min_agreement: float | None = 0.99
    """Top-1 agreement with the reference (share of samples with the same predicted class)."""
    max_accuracy_drop: float | None = 0.01
    """Reference accuracy minus candidate accuracy (needs labels; absolute, 0.01 = 1 point)."""
    max_size_ratio: float | None = None
    """Candidate file size / reference file size."""
    min_cosine: float | None = None
    """Lowest per-sample cosine similarity of any output."""


@dataclass(frozen=True)
class Measured:
    """What the gates look at."""

    top1_agreement: float | None
    accuracy_drop: float | None
    size_ratio: float
    min_cosine: float | None
    has_labels: bool


def check_gates(gates: Gates, measured: Measured) -> list[GateResult]:
    """One GateResult per gate switched on."""
    results: list[GateResult] = []
    if gates.min_agreement is not None:
        value = measured.top1_agreement
        results.append(
            GateResult(
                name="top1_agreement",
                threshold=gates.min_agreement,
                value=value,
                passed=value is not None and value >= gates.min_agreement,
                detail=">= threshold"
                if value is not None
                else "no class-score output to compare (switch off with --min-agreement 0)",
            )
        )
    if gates.max_accuracy_drop is not None and measured.has_labels:
        value = measured.accuracy_drop
        results.append(
            GateResult(
                name="accuracy_drop",
                threshold=gates.max_accuracy_drop,
                value=value,
                passed=value is not None and value <= gates.max_accuracy_drop,
                detail="<= threshold (reference accuracy - candidate accuracy)",
            )
        )
    if gates.max_size_ratio is not None:
        results.append(
            GateResult(
                name="size_ratio",
                threshold=gates.max_size_ratio,
                value=measured.size_ratio,
                passed=measured.size_ratio <= gates.max_size_ratio,
                detail="<= threshold",
            )
        )
    if gates.min_cosine is not None:
        value = measured.min_cosine
        results.append(
            GateResult(
                name="min_cosine",
                threshold=gates.min_cosine,
                value=value,
                passed=value is not None and value >= gates.min_cosine,
                detail=">= threshold",
            )
        )
    return results
