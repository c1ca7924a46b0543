"""Simulated batteries, mains, temperature and drift episodes, judged by the agent's own code.

No broker, no clock: devices are stepped through simulated time by hand and their messages
are parsed by the monitor's parser (the one wire contract)."""

from __future__ import annotations

import json
import random

import pytest

from edge_agent.config import PowerPolicySettings
from edge_agent.errors import ConfigError
from edge_agent.fleet.monitor.payloads import DriftRow, EventRow, TelemetryRow, parse_message
from edge_agent.fleet.simulator.device import SimDevice
from edge_agent.fleet.simulator.drift import (
    DriftEpisodes,
    DriftState,
    new_drift_state,
    synthetic_reference,
)
from edge_agent.fleet.simulator.faults import FaultSettings
from edge_agent.fleet.simulator.fleet import SimClock, SimulatorSettings
from edge_agent.fleet.simulator.power import (
    PowerSupply,
    SupplySettings,
    ambient_c,
    new_supply,
    solar_w,
    spread,
    step,
)
from edge_agent.telemetry.drift import DriftDetector
from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel

NOW = 1_800_000_000.0
DAY = NOW - NOW % 86400
POLICY = PowerPolicySettings(enabled=True, normal_fps=10.0, reduced_fps=2.0)
SUPPLY = SupplySettings(battery_fraction=1.0)


def battery_device(pct: float, seed: int = 0) -> SimDevice:
    capacity = SUPPLY.capacity_wh
    return SimDevice(
        f"bat-{seed}",
        "digits",
        FaultSettings(),
        seed,
        active=1,
        supply=PowerSupply("battery", capacity * pct / 100, capacity),
        policy=POLICY,
    )


def rows(device_id: str, channel: DeviceChannel, payload: bytes) -> list[object]:
    return list(parse_message(topics.device_topic(device_id, channel), payload, NOW, 1 << 20).rows)


def test_sun_rises_and_sets_and_nights_are_cooler() -> None:
    assert solar_w(3.0, SUPPLY) == 0.0 and solar_w(22.0, SUPPLY) == 0.0
    noon = (SUPPLY.sunrise_h + SUPPLY.sunset_h) / 2
    assert solar_w(noon, SUPPLY) == pytest.approx(SUPPLY.solar_peak_w)
    assert solar_w(noon, SUPPLY, clouds=0.5) == pytest.approx(SUPPLY.solar_peak_w / 2)
    assert ambient_c(SUPPLY.sunrise_h, SUPPLY) == pytest.approx(SUPPLY.ambient_c[0])
    assert ambient_c(15.0, SUPPLY) == pytest.approx(SUPPLY.ambient_c[1])
    assert ambient_c(3.0, SUPPLY) < ambient_c(12.0, SUPPLY)


def test_battery_drains_by_load_at_night_and_charges_by_day() -> None:
    rng = random.Random(0)
    supply = PowerSupply("battery", 20.0, 40.0)
    night = step(supply, DAY + 2 * 3600, 3600, 10.0, SUPPLY, rng)
    load = SUPPLY.idle_w + 10 * SUPPLY.inference_j
    assert night.charge_wh == pytest.approx(20.0 - load)
    assert night.last is not None and night.last.charging is False
    assert night.last.power_w == pytest.approx(load)
    idle = step(supply, DAY + 2 * 3600, 3600, 2.0, SUPPLY, rng)
    assert idle.charge_wh > night.charge_wh  # a lower frame rate drains less
    noon = step(supply, DAY + 13 * 3600, 3600, 10.0, SUPPLY, rng)
    assert noon.last is not None and noon.last.charging is True and noon.charge_wh > 20.0
    assert noon.last.temp_c > night.last.temp_c
    full = step(PowerSupply("battery", 40.0, 40.0), DAY + 13 * 3600, 3600, 10.0, SUPPLY, rng)
    assert full.charge_wh == 40.0 and full.last is not None and full.last.charging is False


def test_mains_device_has_no_battery_but_reports_power() -> None:
    supply = new_supply(random.Random(1), SupplySettings(), on_battery=False)
    stepped = step(supply, DAY + 3600, 60, 10.0, SUPPLY, random.Random(1))
    assert stepped.battery_pct is None
    assert stepped.last is not None and stepped.last.battery_pct is None
    assert stepped.last.power_w == pytest.approx(SUPPLY.idle_w + 10 * SUPPLY.inference_j)


def test_battery_device_enters_saving_at_night_and_leaves_once_recharged_with_reasons() -> None:
    """The agent's power policy on simulated readings: saving at 25%, out at 35% once charged."""
    device = battery_device(27.0)
    events = []
    t = DAY + 4 * 3600
    for _ in range(80):  # 04:00 to 12:00 in 6-minute steps
        t += 360
        for payload in device.advance(t, 360, SUPPLY, now=NOW):
            (row,) = rows(device.device_id, DeviceChannel.TELEMETRY, payload)
            assert isinstance(row, EventRow) and row.kind == "power_policy"
            events.append((t, row))
        if device.power.mode == "saving":
            assert device.inference_share() == pytest.approx(0.2)  # reduced_fps / normal_fps
    assert [r.state for _, r in events][:2] == ["saving", "normal"]
    entered, left = events[0][1], events[1][1]
    assert entered.reason == "battery 25% <= 25%"
    assert left.reason == "battery 35% >= 35% (charging)"
    assert json.loads(entered.detail or "{}")["fps"] == 2.0
    assert events[0][0] < DAY + 6 * 3600 < events[1][0]  # in the night, after sunrise


def test_telemetry_reports_battery_power_energy_and_mode() -> None:
    device = battery_device(24.0)
    device.infer(10)
    device.advance(DAY + 3 * 3600, 600, SUPPLY, now=NOW)  # ran at 10 fps, then decided
    device.advance(DAY + 3 * 3600 + 600, 600, SUPPLY, now=NOW)  # ran at 2 fps
    (row, *_load) = rows(device.device_id, DeviceChannel.TELEMETRY, device.telemetry(NOW))
    assert isinstance(row, TelemetryRow)
    assert row.power_mode == "saving"
    assert row.battery_pct is not None and 22.0 < row.battery_pct < 24.0
    load = SUPPLY.idle_w + 2 * SUPPLY.inference_j  # saving: 2 fps
    assert row.power_w == pytest.approx(load, abs=1e-3)
    assert row.energy_j == pytest.approx(load / 2.0, rel=1e-3)  # W / (inferences per s)
    assert row.max_temp_c is not None and 0 < row.max_temp_c < 60


def test_drift_episode_raises_and_clears_the_agents_alarm() -> None:
    episodes = DriftEpisodes(fraction=1.0, start_s=(0.0, 0.0), duration_s=600.0, window=200)
    reference = synthetic_reference(0)
    device = battery_device(80.0)
    device.drift_state = new_drift_state(random.Random(3), episodes, reference, DAY, True)
    levels = []
    transitions = []
    for minute in range(0, 20):
        for payload in device.drift(DAY + minute * 60, episodes, now=NOW):
            (row,) = rows(device.device_id, DeviceChannel.DRIFT, payload)
            if isinstance(row, DriftRow):
                levels.append(row.alarm["input"])
            else:
                assert isinstance(row, EventRow) and row.kind == "drift_alarm"
                transitions.append(row.reason)
    assert "alarm" in levels[:10] and levels[-1] == "ok"
    assert "input: ok -> alarm" in transitions and "input: alarm -> ok" in transitions


def test_devices_without_an_episode_stay_calm() -> None:
    episodes = DriftEpisodes(fraction=0.0)
    state = new_drift_state(random.Random(1), episodes, synthetic_reference(0), DAY, False)
    assert state.episode is None and not state.drifting(DAY + 1000)
    assert isinstance(state, DriftState) and isinstance(state.detector, DriftDetector)


def test_traits_are_spread_over_the_fleet_in_exact_counts() -> None:
    assert spread(6, 0.5) == {0, 2, 4} and spread(6, 0.5, reverse=True) == {5, 3, 1}
    assert spread(11, 0.0) == set() and spread(3, 1.0) == {0, 1, 2}
    assert len(spread(11, 0.4)) == 4


def test_simulated_clock_runs_faster_from_the_start_hour() -> None:
    clock = SimClock(720.0, 4.0, NOW)
    assert (clock.at(NOW) % 86400) / 3600 == pytest.approx(4.0)
    assert clock.at(NOW + 10) - clock.at(NOW) == pytest.approx(7200.0)
    assert SimClock(1.0, None, NOW).at(NOW + 5) == pytest.approx(NOW + 5)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: SupplySettings(battery_fraction=1.5),
        lambda: SupplySettings(sunrise_h=20.0, sunset_h=6.0),
        lambda: SupplySettings(start_pct=(80.0, 20.0)),
        lambda: DriftEpisodes(fraction=-0.1),
        lambda: DriftEpisodes(window=5),
        lambda: SimulatorSettings(time_scale=0.0),
        lambda: SimulatorSettings(start_hour=25.0),
    ],
)
def test_settings_are_validated(bad: object) -> None:
    with pytest.raises(ConfigError):
        bad()  # type: ignore[operator]
