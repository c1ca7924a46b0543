"""The fleet power and drift views on a real store, fed with simulated devices' messages.

``check_views`` is also run on PostgreSQL (tests/integration/test_monitor_postgres.py): the
bucketed SQL must mean the same on both backends.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_agent.config import PowerPolicySettings
from edge_agent.fleet.monitor import fleet_views
from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.fleet.monitor.store import Store, open_store
from edge_agent.fleet.simulator.device import SimDevice
from edge_agent.fleet.simulator.drift import DriftEpisodes, new_drift_state, synthetic_reference
from edge_agent.fleet.simulator.faults import FaultSettings
from edge_agent.fleet.simulator.power import PowerSupply, SupplySettings
from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel

T0 = 1_800_000_000.0
DAY = T0 - T0 % 86400
POLICY = PowerPolicySettings(enabled=True, normal_fps=10.0, reduced_fps=2.0)
EPISODES = DriftEpisodes(fraction=1.0, start_s=(0.0, 0.0), duration_s=1e9, window=100)


def feed_store(store: Store) -> tuple[SimDevice, SimDevice]:
    """A battery device into saving and a drifting mains device, 20 reports 10 s apart."""
    battery = SimDevice(
        "bat", "digits", FaultSettings(), 0, active=1,
        supply=PowerSupply("battery", 0.26 * 40, 40.0), policy=POLICY,
    )  # fmt: skip
    mains = SimDevice("mains", "digits", FaultSettings(), 0, active=1, policy=POLICY)
    mains.drift_state = new_drift_state(
        random.Random(0), EPISODES, synthetic_reference(0), DAY, True
    )
    for i in range(20):
        now = T0 + 10 * i
        sim = DAY + 3 * 3600 + 600 * i  # 03:00 on, 10 simulated minutes a report
        for device in (battery, mains):
            messages = [(DeviceChannel.TELEMETRY, m) for m in device.advance(sim, 600, SUPPLY, now)]
            device.infer(10)
            messages.append((DeviceChannel.TELEMETRY, device.telemetry(now)))
            messages += [(DeviceChannel.DRIFT, m) for m in device.drift(sim, EPISODES, now)]
            rows = [
                row
                for channel, payload in messages
                for row in parse_message(
                    topics.device_topic(device.device_id, channel), payload, now, 1 << 22
                ).rows
            ]
            store.write_batch(rows, now)
    return battery, mains


SUPPLY = SupplySettings()


def check_views(store: Store) -> None:
    """What both backends must answer for ``feed_store``'s fleet."""
    battery, mains = feed_store(store)
    now = T0 + 200
    power = fleet_views.fleet_power(store, now, T0 - 1)
    totals = power["totals"]
    assert (totals["battery"], totals["mains"], totals["saving"]) == (1, 1, 1)
    assert battery.supply.last is not None and mains.supply.last is not None
    assert totals["power_w"] == pytest.approx(
        battery.supply.last.power_w + mains.supply.last.power_w
    )
    assert totals["lowest_battery_pct"] == pytest.approx(battery.supply.battery_pct, abs=0.01)
    by_id = {d["device_id"]: d for d in power["devices"]}
    assert by_id["bat"]["supply"] == "battery" and by_id["mains"]["supply"] == "mains"
    assert by_id["bat"]["last_switch"]["reason"] == "battery 24% <= 25%"  # 10-minute steps
    (transition,) = power["transitions"]
    assert transition["device_id"] == "bat" and transition["fps"] == 2.0
    # each bucket's fleet power is the sum of the devices' means: 2 devices, 1.56-1.8 W each
    assert power["series"]["power_w"] and all(
        3.0 <= v <= 3.7 for _t, v in power["series"]["power_w"]
    )
    assert [s["device_id"] for s in power["series"]["battery"]] == ["bat"]
    assert len(power["series"]["battery"][0]["points"]) <= fleet_views.MAX_BUCKETS

    drift = fleet_views.fleet_drift_overview(store, now, T0 - 1)
    model = drift["models"]["digits"]
    assert drift["devices_in_alarm"] == ["mains"] == model["devices_in_alarm"]
    assert model["devices"][0]["device_id"] == "mains" and model["devices"][0]["in_alarm"]
    assert model["features"][0]["max"] >= 1.0
    assert model["series"][0]["points"]
    assert {e["reason"] for e in drift["events"]} >= {"input: ok -> alarm"}


def test_power_and_drift_views_on_sqlite(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        check_views(store)
    finally:
        store.close()


def test_buckets_keep_lines_short() -> None:
    assert fleet_views.bucket_seconds(60) == 1.0
    assert fleet_views.bucket_seconds(86400) * fleet_views.MAX_BUCKETS == pytest.approx(86400)
