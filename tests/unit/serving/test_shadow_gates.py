"""The shadow check's latency gate judges like with like, on enough timed inferences."""

from __future__ import annotations

from edge_agent.config import SwapGateSettings
from edge_agent.serving.gates import Evidence, judge_shadow

GATES = SwapGateSettings(min_samples=20, max_latency_ratio=2.0)


def evidence(candidate_ms: list[float], active_ms: list[float]) -> Evidence:
    n = len(candidate_ms)
    return Evidence(
        compared=n,
        agreed=n,
        candidate_latencies_s=[ms / 1000 for ms in candidate_ms],
        active_latencies_s=[ms / 1000 for ms in active_ms],
    )


def test_a_latency_from_one_or_two_live_frames_cannot_reject_a_candidate():
    """Regression: at the start of power saving the active version's p95 rested on the 1-2
    frames paced to 2/s that reached the shadow window, and a lighter model was refused."""
    ok, reason = judge_shadow(evidence([3.0] * 30, [0.5, 0.6]), GATES)
    assert ok and "latency not judged: 2 timed inferences" in reason


def test_enough_timed_inferences_still_reject_a_slow_candidate():
    ok, reason = judge_shadow(evidence([3.0] * 30, [1.0] * 30), GATES)
    assert not ok and reason.startswith("latency p95 3.00 ms > 2.0x")
    ok, reason = judge_shadow(evidence([1.5] * 30, [1.0] * 30), GATES)
    assert ok and "p95 1.50 ms vs 1.00 ms" in reason
