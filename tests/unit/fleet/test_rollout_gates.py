"""Gate rules and step decisions, on plain values."""

from __future__ import annotations

import pytest

from edge_agent.errors import ConfigError
from edge_agent.fleet.rollout.gates import (
    FAIL,
    PASS,
    WAIT,
    GateThresholds,
    WaveReading,
    decide_step,
    evaluate_gates,
)

LIMITS = GateThresholds(min_inferences=100, soak_s=60, wave_timeout_s=600)
HEALTHY = WaveReading(
    cohort=10,
    on_release=10,
    online=10,
    inferences=1000,
    errors=2,
    error_rate=0.002,
    latency_p95_ms=9.0,
    baseline_p95_ms=8.0,
    shadow_agreement=0.99,
    shadow_compared=320,
)


def status_of(reading: WaveReading, name: str, limits: GateThresholds = LIMITS) -> str:
    verdict = evaluate_gates(reading, limits)
    return next(c.status for c in verdict.checks if c.name == name)


def test_healthy_wave_passes() -> None:
    verdict = evaluate_gates(HEALTHY, LIMITS)
    assert verdict.outcome == PASS, verdict.reason
    assert verdict.reason == "all gates pass"


def test_high_error_rate_fails() -> None:
    bad = HEALTHY.__class__(**{**HEALTHY.as_dict(), "error_rate": 0.3, "errors": 300})
    verdict = evaluate_gates(bad, LIMITS)
    assert verdict.outcome == FAIL
    assert "error_rate" in verdict.reason


def test_error_rate_waits_for_enough_inferences() -> None:
    few = WaveReading(cohort=10, on_release=10, inferences=10, errors=5, error_rate=0.33)
    assert status_of(few, "error_rate") == WAIT


def test_latency_against_previous_release_and_absolute() -> None:
    slow = WaveReading(**{**HEALTHY.as_dict(), "latency_p95_ms": 20.0})
    assert status_of(slow, "latency_p95") == FAIL
    absolute = GateThresholds(max_latency_p95_ms=5.0)
    assert status_of(HEALTHY, "latency_p95", absolute) == FAIL
    unknown = WaveReading(**{**HEALTHY.as_dict(), "latency_p95_ms": None})
    assert status_of(unknown, "latency_p95") == WAIT
    no_baseline = WaveReading(**{**HEALTHY.as_dict(), "baseline_p95_ms": None})
    assert status_of(no_baseline, "latency_p95") == PASS


def test_shadow_agreement() -> None:
    low = WaveReading(**{**HEALTHY.as_dict(), "shadow_agreement": 0.5})
    assert status_of(low, "shadow_agreement") == FAIL
    none = WaveReading(**{**HEALTHY.as_dict(), "shadow_agreement": None, "shadow_compared": 0})
    assert status_of(none, "shadow_agreement") == PASS
    strict = GateThresholds(require_agreement=True)
    assert status_of(none, "shadow_agreement", strict) == WAIT


def test_drift_alarm_and_failed_installs_fail() -> None:
    drifting = WaveReading(**{**HEALTHY.as_dict(), "drift_alarm_devices": ("d1", "d2")})
    assert evaluate_gates(drifting, LIMITS).outcome == FAIL
    strict = GateThresholds(max_drift_alarm_devices=0, max_drift_alarm_fraction=0)
    one = WaveReading(**{**HEALTHY.as_dict(), "drift_alarm_devices": ("d1",)})
    assert status_of(one, "drift", strict) == FAIL
    failing = WaveReading(**{**HEALTHY.as_dict(), "failed": 3})
    assert status_of(failing, "failed_installs") == FAIL


def test_one_device_in_drift_alarm_does_not_fail_a_wave_by_default() -> None:
    """Regression: the default allowed zero drift-alarm devices, so one camera whose scene
    changed failed the wave (and rolled the release back for everyone)."""
    one = WaveReading(**{**HEALTHY.as_dict(), "drift_alarm_devices": ("d1",)})
    assert evaluate_gates(one, GateThresholds()).outcome == PASS
    canary = WaveReading(
        **{**HEALTHY.as_dict(), "cohort": 1, "on_release": 1, "drift_alarm_devices": ("d1",)}
    )
    assert status_of(canary, "drift", GateThresholds()) == PASS


@pytest.mark.parametrize(
    ("cohort", "alarms", "status"),
    [(10, 1, PASS), (10, 2, FAIL), (100, 10, PASS), (100, 11, FAIL), (1000, 100, PASS)],
)
def test_drift_tolerates_a_bounded_share_of_the_cohort(
    cohort: int, alarms: int, status: str
) -> None:
    """Default: at most max(1 device, 10 % of the cohort) in drift alarm."""
    reading = WaveReading(
        **{
            **HEALTHY.as_dict(),
            "cohort": cohort,
            "on_release": cohort,
            "drift_alarm_devices": tuple(f"d{i}" for i in range(alarms)),
        }
    )
    assert status_of(reading, "drift", GateThresholds()) == status


def test_drift_thresholds_validate() -> None:
    with pytest.raises(ConfigError, match="max_drift_alarm_fraction"):
        GateThresholds(max_drift_alarm_fraction=1.5)
    with pytest.raises(ConfigError, match="max_drift_alarm_devices"):
        GateThresholds(max_drift_alarm_devices=-1)


def test_coverage_waits_until_the_wave_runs_the_release() -> None:
    partial = WaveReading(**{**HEALTHY.as_dict(), "on_release": 5})
    assert evaluate_gates(partial, LIMITS).outcome == WAIT
    empty = WaveReading(cohort=0)
    assert status_of(empty, "coverage") == WAIT


def test_thresholds_validate_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="max_error_rate"):
        GateThresholds(max_error_rate=2)
    with pytest.raises(ConfigError, match="unknown"):
        GateThresholds.from_dict({"nope": 1})
    assert GateThresholds.from_dict(LIMITS.as_dict()) == LIMITS


PASSING = evaluate_gates(HEALTHY, LIMITS)
FAILING = evaluate_gates(WaveReading(**{**HEALTHY.as_dict(), "error_rate": 0.5}), LIMITS)
WAITING = evaluate_gates(WaveReading(cohort=10), LIMITS)


@pytest.mark.parametrize(
    ("status", "opened", "age", "verdict", "action"),
    [
        ("rolling", 1, 10, PASSING, "wait"),  # soaking
        ("rolling", 1, 61, PASSING, "advance"),
        ("rolling", 3, 61, PASSING, "complete"),
        ("rolling", 1, 1, FAILING, "roll_back"),  # no soak needed to fail
        ("rolling", 1, 601, WAITING, "time_out"),
        ("rolling", 1, 100, WAITING, "wait"),
        ("paused", 1, 1000, PASSING, "wait"),  # paused: no advance, no timeout
        ("paused", 1, 1000, FAILING, "roll_back"),  # but a failing gate still rolls back
        ("completed", 3, 1, PASSING, "none"),
        ("rolled_back", 1, 1, FAILING, "none"),
    ],
)
def test_decide_step(status: str, opened: int, age: float, verdict: object, action: str) -> None:
    decision = decide_step(status, 3, opened, 1000.0, verdict, 1000.0 + age, LIMITS)  # type: ignore[arg-type]
    assert decision.action == action, decision.reason


def variant(
    cohort: int, inferences: int, errors: int, p95: float, baseline: float | None
) -> WaveReading:
    return WaveReading(
        cohort=cohort,
        on_release=cohort,
        online=cohort,
        inferences=inferences,
        errors=errors,
        error_rate=errors / (inferences + errors),
        latency_p95_ms=p95,
        baseline_p95_ms=baseline,
    )


def test_a_failing_variant_fails_the_wave_though_the_whole_passes() -> None:
    """Two Coral devices failing one inference in five are a 0.5 % error rate among forty
    healthy Pis: the whole passes, the variant does not, and the reason names it."""
    pi = variant(40, 40_000, 0, 9.0, 8.0)
    coral = variant(2, 800, 200, 3.0, 3.0)
    whole = WaveReading(
        cohort=42,
        on_release=42,
        online=42,
        inferences=40_800,
        errors=200,
        error_rate=200 / 41_000,  # 0.5 %: the Corals averaged away
        latency_p95_ms=9.0,
        baseline_p95_ms=8.0,
        variants=(("digits_edgetpu.tflite", coral), ("digits_int8.tflite", pi)),
    )
    verdict = evaluate_gates(whole, LIMITS)
    assert verdict.outcome == FAIL
    assert status_of(whole, "error_rate") == PASS
    assert status_of(whole, "error_rate[digits_edgetpu.tflite]") == FAIL
    assert status_of(whole, "error_rate[digits_int8.tflite]") == PASS
    assert verdict.reason == "error_rate[digits_edgetpu.tflite]: digits_edgetpu.tflite: 0.2 > 0.02"
    decision = decide_step("rolling", 3, 1, 0.0, verdict, 10.0, LIMITS)
    assert decision.action == "roll_back" and "digits_edgetpu.tflite" in decision.reason
    shown = whole.as_dict()["variants"]
    assert shown["digits_edgetpu.tflite"]["error_rate"] == 0.2


def test_each_variant_is_judged_against_its_own_baseline_and_evidence() -> None:
    """A Jetson variant three times slower than its previous release hides in a mixed p95
    that Pis dominate; a variant with too little traffic holds the wave until it has some."""
    jetson = variant(3, 3_000, 0, 6.0, 2.0)
    pi = variant(30, 30_000, 0, 9.0, 9.0)
    mixed = WaveReading(**HEALTHY.as_dict(), variants=(("fp16.onnx", jetson), ("int8.tflite", pi)))
    assert status_of(mixed, "latency_p95") == PASS
    assert status_of(mixed, "latency_p95[fp16.onnx]") == FAIL
    assert "fp16.onnx: p95 6 ms is 3.00x" in evaluate_gates(mixed, LIMITS).reason
    quiet = variant(1, 10, 0, 5.0, 5.0)
    waiting = WaveReading(**HEALTHY.as_dict(), variants=(("int8.tflite", pi), ("rare", quiet)))
    verdict = evaluate_gates(waiting, LIMITS)
    assert verdict.outcome == WAIT and verdict.reason.startswith("error_rate[rare]: rare: 10")
    single = evaluate_gates(HEALTHY, LIMITS)  # one variant: no per-variant checks at all
    assert not any("[" in c.name for c in single.checks)
