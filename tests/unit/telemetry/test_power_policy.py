from __future__ import annotations

from edge_agent.config import PowerPolicySettings
from edge_agent.telemetry.power_policy import PowerState, decide

POLICY = PowerPolicySettings(
    enabled=True,
    battery_low_pct=20,
    battery_recover_pct=30,
    temp_high_c=80,
    temp_recover_c=70,
    normal_fps=30,
    reduced_fps=5,
    light_variant="digits-int8",
)


def run(readings: list[tuple[float | None, bool | None, float | None]]) -> list[str]:
    state, modes = PowerState(), []
    for battery, charging, temp in readings:
        decision = decide(state, battery, charging, temp, POLICY)
        state = decision.state
        modes.append(state.mode)
    return modes


def test_low_battery_switches_with_hysteresis() -> None:
    modes = run(
        [
            (50, False, 40),
            (20, False, 40),
            (25, False, 40),
            (29, False, 40),
            (30, False, 40),
            (21, False, 40),
        ]
    )
    assert modes == ["normal", "saving", "saving", "saving", "normal", "normal"]


def test_charging_ends_battery_saving_and_prevents_it() -> None:
    assert run([(10, False, None), (12, True, None), (10, True, None)]) == [
        "saving",
        "normal",
        "normal",
    ]


def test_heat_throttles_with_hysteresis() -> None:
    assert run([(None, None, 79.9), (None, None, 80), (None, None, 75), (None, None, 70)]) == [
        "normal",
        "saving",
        "saving",
        "normal",
    ]


def test_missing_readings_keep_the_state() -> None:
    assert run([(10, False, 85), (None, None, None)]) == ["saving", "saving"]


def test_decision_names_fps_variant_and_reason_and_reports_changes_once() -> None:
    first = decide(PowerState(), 15, False, 50, POLICY)
    assert first.changed and first.fps == 5 and first.model_variant == "digits-int8"
    assert "battery 15% <= 20%" in first.reasons[0]
    assert first.report()["mode"] == "saving"
    again = decide(first.state, 14, False, 50, POLICY)
    assert not again.changed and again.reasons == ()
    back = decide(again.state, 35, False, 50, POLICY)
    assert back.changed and back.fps == 30 and back.model_variant is None


def test_disabled_policy_never_saves() -> None:
    policy = PowerPolicySettings(enabled=False)
    decision = decide(PowerState(), 1, False, 120, policy)
    assert decision.state.mode == "normal" and not decision.changed


def test_policy_rejects_inverted_hysteresis() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="battery_recover_pct"):
        PowerPolicySettings(battery_low_pct=40, battery_recover_pct=30)
