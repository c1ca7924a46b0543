"""Health gates for a model swap: pure decisions over what the shadow check and the watch saw.

The thresholds are the config's :class:`~edge_agent.config.SwapGateSettings` (`serving.gates`),
used as they are: no mirror class to keep in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.config import SwapGateSettings


@dataclass
class Evidence:
    """Counts collected while a candidate is compared with the active version."""

    compared: int = 0
    agreed: int = 0
    errors: int = 0
    candidate_latencies_s: list[float] | None = None
    active_latencies_s: list[float] | None = None

    def p95_ms(self, latencies: Sequence[float] | None) -> float | None:
        """95th percentile in milliseconds, or None without data."""
        if not latencies:
            return None
        return float(np.percentile(np.asarray(latencies), 95) * 1000)

    def summary(self) -> dict[str, float | int | None]:
        """What the gates were judged on (reported with the verdict)."""
        total = self.compared + self.errors
        return {
            "compared": self.compared,
            "agreement": round(self.agreed / self.compared, 4) if self.compared else None,
            "error_rate": round(self.errors / total, 4) if total else None,
            "candidate_p95_ms": self.p95_ms(self.candidate_latencies_s),
            "active_p95_ms": self.p95_ms(self.active_latencies_s),
        }


def outputs_agree(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    """Same answer? Classifier rows: same top-1 class. Other tensors: cosine similarity >= 0.99.

    Quantized and float versions of a model never match bit for bit; agreement is about the
    decision, not the digits.
    """
    if a.keys() != b.keys():
        return False
    for name, left in a.items():
        right = b[name]
        if left.shape != right.shape:
            return False
        x = np.asarray(left, dtype=np.float64)
        y = np.asarray(right, dtype=np.float64)
        if x.ndim == 2 and x.shape[1] > 1:
            if not np.array_equal(x.argmax(axis=1), y.argmax(axis=1)):
                return False
            continue
        norm = float(np.linalg.norm(x) * np.linalg.norm(y))
        if norm == 0.0:
            if not np.allclose(x, y):
                return False
        elif float(np.dot(x.ravel(), y.ravel())) / norm < 0.99:
            return False
    return True


def judge_shadow(evidence: Evidence, gates: SwapGateSettings) -> tuple[bool, str]:
    """May the candidate become active? Returns (ok, reason)."""
    summary = evidence.summary()
    total = evidence.compared + evidence.errors
    if total < gates.min_samples:
        return False, (
            f"not enough evidence: {total} shadow inferences, {gates.min_samples} "
            "needed (more traffic or a longer shadow_seconds)"
        )
    error_rate = evidence.errors / total
    if error_rate > gates.max_error_rate:
        return False, f"error rate {error_rate:.2%} > {gates.max_error_rate:.2%}"
    agreement = evidence.agreed / evidence.compared if evidence.compared else 0.0
    if agreement < gates.min_agreement:
        return (
            False,
            f"agreement with the active version {agreement:.2%} < {gates.min_agreement:.2%}",
        )
    candidate_p95, active_p95 = summary["candidate_p95_ms"], summary["active_p95_ms"]
    timed = min(len(evidence.candidate_latencies_s or ()), len(evidence.active_latencies_s or ()))
    if timed < gates.min_samples:  # a p95 of one or two frames is noise, not a verdict
        return True, (
            f"passed: agreement {agreement:.2%}, error rate {error_rate:.2%}; latency not "
            f"judged: {timed} timed inferences of each version, {gates.min_samples} needed"
        )
    if (
        candidate_p95 is not None
        and active_p95
        and candidate_p95 > (gates.max_latency_ratio * active_p95)
    ):
        return False, (
            f"latency p95 {candidate_p95:.2f} ms > {gates.max_latency_ratio}x the "
            f"active version's {active_p95:.2f} ms"
        )
    return True, (
        f"passed: agreement {agreement:.2%}, error rate {error_rate:.2%}, "
        f"p95 {candidate_p95 or 0:.2f} ms vs {active_p95 or 0:.2f} ms"
    )


def judge_watch(
    requests: int,
    errors: int,
    p95_ms: float | None,
    baseline_p95_ms: float | None,
    gates: SwapGateSettings,
) -> str | None:
    """After activation: a reason to roll back, or None while the new version is healthy."""
    if requests < gates.watch_min_requests:
        return None
    rate = errors / requests
    if rate > gates.max_error_rate:
        return f"error rate {rate:.2%} > {gates.max_error_rate:.2%} after activation"
    if (
        p95_ms is not None
        and baseline_p95_ms
        and p95_ms > gates.max_latency_ratio * baseline_p95_ms
    ):
        return (
            f"latency p95 {p95_ms:.2f} ms > {gates.max_latency_ratio}x the previous "
            f"version's {baseline_p95_ms:.2f} ms after activation"
        )
    return None
