from __future__ import annotations

import numpy as np
import pytest

from edge_agent.config import DriftSettings, DriftThresholds
from edge_agent.telemetry.drift import (
    AlarmState,
    DriftDetector,
    DriftMonitor,
    ks_threshold,
    psi_threshold,
    score_window,
    step_alarm,
)
from edge_agent.telemetry.profile import build_profile

RNG = np.random.default_rng(11)


def reference():
    x = RNG.normal(size=(2000, 3))
    return build_profile(x, x @ np.array([[1, 0], [0, 1], [1, 1]]))


def test_alarm_raises_only_after_consecutive_drifting_windows() -> None:
    s = AlarmState()
    s = step_alarm(s, drifting=True, calm=False, raise_after=2, clear_after=2)
    assert s.level == "ok"
    s = step_alarm(s, drifting=False, calm=False, raise_after=2, clear_after=2)
    s = step_alarm(s, drifting=True, calm=False, raise_after=2, clear_after=2)
    assert s.level == "ok"  # the streak was broken
    s = step_alarm(s, drifting=True, calm=False, raise_after=2, clear_after=2)
    assert s.level == "alarm"


def test_alarm_clears_only_after_consecutive_calm_windows() -> None:
    s = AlarmState(level="alarm")
    # below the raise threshold but above the clear band: stays raised (hysteresis)
    for _ in range(5):
        s = step_alarm(s, drifting=False, calm=False, raise_after=2, clear_after=2)
    assert s.level == "alarm"
    s = step_alarm(s, drifting=False, calm=True, raise_after=2, clear_after=2)
    assert s.level == "alarm"
    s = step_alarm(s, drifting=False, calm=True, raise_after=2, clear_after=2)
    assert s.level == "ok"


def test_thresholds_scale_with_window_size() -> None:
    assert ks_threshold(1.95, 100, 1000) > ks_threshold(1.95, 1000, 1000)
    assert psi_threshold(0.25, 10, 50, 1000) > psi_threshold(0.25, 10, 5000, 1000) > 0.25


def test_score_window_flags_shifted_feature_and_names_it() -> None:
    ref = reference()
    x = RNG.normal(size=(300, 3))
    x[:, 1] += 1.0
    window = build_profile(x, x @ np.array([[1, 0], [0, 1], [1, 1]]), reference=ref)
    scores = score_window(ref, window, DriftThresholds(), 0.7)
    assert scores["input"].drifting
    assert scores["input"].detail["drifting_features"][0] == "f1"
    assert "f0" not in scores["input"].detail["drifting_features"]
    assert not scores["quality"].drifting


def test_clean_window_is_calm() -> None:
    ref = reference()
    x = RNG.normal(size=(300, 3))
    window = build_profile(x, x @ np.array([[1, 0], [0, 1], [1, 1]]), reference=ref)
    scores = score_window(ref, window, DriftThresholds(), 0.7)
    assert not any(s.drifting for s in scores.values())


def test_nan_inputs_raise_the_quality_signal() -> None:
    ref = reference()
    x = RNG.normal(size=(100, 3))
    x[:10, 0] = np.nan
    window = build_profile(x, reference=ref)
    scores = score_window(ref, window, DriftThresholds(), 0.7)
    assert scores["quality"].drifting and scores["quality"].detail["nan_rate"] == 0.1


def test_detector_reports_transitions() -> None:
    ref = reference()
    detector = DriftDetector(ref, DriftSettings(raise_after=2, clear_after=1))
    shifted = RNG.normal(loc=2.0, size=(200, 3))
    assert detector.evaluate_batch(shifted, None).transitions == []
    result = detector.evaluate_batch(shifted, None)
    assert {"signal": "input", "from": "ok", "to": "alarm"} in result.transitions
    result = detector.evaluate_batch(RNG.normal(size=(200, 3)), None)
    assert {"signal": "input", "from": "alarm", "to": "ok"} in result.transitions


def test_monitor_windows_by_count_and_emits_reports() -> None:
    ref = reference()
    reports: list[dict] = []
    monitor = DriftMonitor(
        "m", ref, DriftSettings(window_size=50, min_window=10), reports.append, seed=1
    )
    for _ in range(120):
        x = RNG.normal(size=(1, 3))
        monitor.observe(x, x @ np.array([[1, 0], [0, 1], [1, 1]]))
    monitor.process_pending()
    assert [r["samples"] for r in reports] == [50, 50]
    assert reports[0]["model"] == "m" and reports[0]["profile"]["kind"] == "window"
    monitor.process_pending(force_close=True)
    assert [r["samples"] for r in reports] == [50, 50, 20]


def test_monitor_closes_time_windows() -> None:
    now = [0.0]
    reports: list[dict] = []
    monitor = DriftMonitor(
        "m",
        reference(),
        DriftSettings(window_size=1000, window_s=60, min_window=10),
        reports.append,
        clock=lambda: now[0],
    )
    for _ in range(20):
        monitor.observe(RNG.normal(size=(1, 3)), None)
    monitor.process_pending()
    assert reports == []
    now[0] = 61.0
    monitor.process_pending()
    assert len(reports) == 1 and reports[0]["samples"] == 20


def test_monitor_drops_and_counts_when_the_queue_is_full() -> None:
    monitor = DriftMonitor("m", reference(), DriftSettings(queue_max=5), lambda r: None)
    for _ in range(8):
        monitor.observe(np.zeros((1, 3)), None)
    assert monitor.queue_depth == 5 and monitor.dropped == 3


def test_monitor_worker_thread_processes_off_the_caller() -> None:
    reports: list[dict] = []
    monitor = DriftMonitor(
        "m", reference(), DriftSettings(window_size=20, min_window=10), reports.append
    )
    monitor.start(poll_s=0.01)
    try:
        for _ in range(40):
            monitor.observe(RNG.normal(size=(1, 3)), None)
    finally:
        monitor.stop()
    assert len(reports) == 2


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_monitor_samples_at_the_configured_rate(rate: float) -> None:
    monitor = DriftMonitor(
        "m", reference(), DriftSettings(sample_rate=rate, queue_max=100000), lambda r: None, seed=5
    )
    for _ in range(20000):
        monitor.observe(None, None)
    assert monitor.queue_depth == pytest.approx(20000 * rate, rel=0.08)
