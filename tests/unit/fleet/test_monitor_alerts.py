"""Alert rules and the firing/resolve plan: pure functions on plain rows."""

from __future__ import annotations

from edge_agent._retry import backoff_delays
from edge_agent.fleet.monitor.alerts import (
    AlertRules,
    Condition,
    drift_conditions,
    latency_conditions,
    offline_conditions,
    plan,
    rollout_conditions,
    sensor_conditions,
)
from edge_agent.fleet.monitor.delivery import retryable

RULES = AlertRules(latency_slo_ms=100, battery_low_pct=15, overheat_c=80, offline_after_s=300)
NOW = 10_000.0


def test_drift_fires_per_device_and_model_on_any_signal() -> None:
    rows = [
        {
            "device_id": "a",
            "model": "m",
            "input_alarm": "ok",
            "prediction_alarm": "alarm",
            "quality_alarm": None,
        },
        {
            "device_id": "b",
            "model": "m",
            "input_alarm": "ok",
            "prediction_alarm": "ok",
            "quality_alarm": "ok",
        },
    ]
    (c,) = drift_conditions(rows)
    assert c.key == "drift_alarm:a:m" and "prediction" in c.message


def test_latency_needs_most_reports_over_the_slo() -> None:
    rows = [
        {"device_id": "a", "model": "m", "reports": 4, "breaching": 3, "worst_p95": 400.0},
        {"device_id": "b", "model": "m", "reports": 4, "breaching": 2, "worst_p95": 900.0},
        {"device_id": "c", "model": "m", "reports": 1, "breaching": 1, "worst_p95": 900.0},
    ]
    assert [c.device_id for c in latency_conditions(rows, RULES)] == ["a"]


def test_battery_and_overheating() -> None:
    rows = [
        {"device_id": "a", "battery_pct": 10.0, "max_temp_c": 81.0},
        {"device_id": "b", "battery_pct": None, "max_temp_c": 79.9},
    ]
    assert sorted(c.rule for c in sensor_conditions(rows, RULES)) == ["battery_low", "overheating"]


def test_offline_after_n_minutes_by_last_will_or_silence() -> None:
    rows = [
        {"device_id": "will", "state": "offline", "state_since": NOW - 400, "last_seen": NOW - 400},
        {
            "device_id": "fresh",
            "state": "offline",
            "state_since": NOW - 100,
            "last_seen": NOW - 100,
        },
        {"device_id": "silent", "state": "online", "state_since": 0, "last_seen": NOW - 1000},
        {"device_id": "alive", "state": "online", "state_since": 0, "last_seen": NOW - 5},
    ]
    assert [c.device_id for c in offline_conditions(rows, NOW, RULES)] == ["will", "silent"]


def test_rollout_failure_holds_then_clears_and_success_clears() -> None:
    rows = [
        {
            "device_id": "a",
            "model": "m",
            "version": "2",
            "state": "rolled_back",
            "reason": "x",
            "time": NOW - 10,
        },
        {
            "device_id": "b",
            "model": "m",
            "version": "2",
            "state": "failed",
            "reason": None,
            "time": NOW - 7200,
        },
        {
            "device_id": "c",
            "model": "m",
            "version": "2",
            "state": "active",
            "reason": "",
            "time": NOW,
        },
    ]
    assert [c.device_id for c in rollout_conditions(rows, NOW, RULES)] == ["a"]


def test_plan_opens_new_and_resolves_gone() -> None:
    c = Condition("k1", "r", "d", None, "warning", "m")
    assert plan({"k0"}, [c]) == ([c], ["k0"])
    assert plan({"k1"}, [c]) == ([], [])


def test_webhook_backoff_and_retry_policy() -> None:
    assert backoff_delays(5, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0]
    assert retryable(None) and retryable(503) and retryable(429)
    assert not retryable(400) and not retryable(404)
