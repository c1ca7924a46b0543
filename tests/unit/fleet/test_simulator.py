"""Simulated devices: reproducible faults, and messages the monitor's parser accepts."""

from __future__ import annotations

import json
import random

import pytest

from edge_agent.delivery.update import UpdateState
from edge_agent.errors import ConfigError
from edge_agent.fleet.monitor.payloads import EventRow, LoadRow, StatusRow, parse_message
from edge_agent.fleet.simulator.device import SimDevice
from edge_agent.fleet.simulator.faults import FaultSettings, synthetic_inference
from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.states import SwapState

NOW = 1_800_000_000.0


def test_bad_release_reports_errors_and_good_one_does_not() -> None:
    faults = FaultSettings(bad_releases=frozenset({3}), bad_error_rate=0.5)
    rng = random.Random(1)
    good = [synthetic_inference(rng, faults, 2, slow=False) for _ in range(2000)]
    bad = [synthetic_inference(rng, faults, 3, slow=False) for _ in range(2000)]
    assert all(i.ok for i in good)
    assert 0.4 < sum(not i.ok for i in bad) / 2000 < 0.6
    assert 0.004 < sorted(i.latency_s for i in good)[1000] < 0.012


def test_latency_inflation() -> None:
    rng = random.Random(2)
    slow = FaultSettings(latency_factor=3.0)
    median = sorted(synthetic_inference(rng, slow, 1, slow=False).latency_s for _ in range(501))
    assert median[250] > 0.018


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="error_rate"):
        FaultSettings(error_rate=1.5)


def test_same_seed_same_fleet() -> None:
    a = SimDevice("d1", "digits", FaultSettings(error_rate=0.2), seed=7, active=1)
    b = SimDevice("d1", "digits", FaultSettings(error_rate=0.2), seed=7, active=1)
    a.infer(100)
    b.infer(100)
    la, lb = a.latency.collect()["models"][0], b.latency.collect()["models"][0]
    assert (la["count"], la["errors"]) == (lb["count"], lb["errors"])


def test_messages_parse_in_the_monitor() -> None:
    device = SimDevice("sim-1", "digits", FaultSettings(error_rate=0.1), seed=0, active=2)
    device.infer(50)
    status_topic = topics.device_topic("sim-1", DeviceChannel.STATUS)
    (status,) = parse_message(status_topic, device.status(now=NOW), NOW, 1 << 20).rows
    assert isinstance(status, StatusRow) and status.models[0][:2] == ("digits", "2")

    telemetry = device.telemetry(now=NOW)
    envelope = json.loads(telemetry)
    assert envelope["id"].endswith("-1") and envelope["priority"] == "telemetry"
    rows = parse_message(
        topics.device_topic("sim-1", DeviceChannel.TELEMETRY), telemetry, NOW, 1 << 20
    ).rows
    load = [r for r in rows if isinstance(r, LoadRow)]
    assert load and load[0].version == "2" and load[0].count + load[0].errors == 50
    assert load[0].sketch is not None
    assert json.loads(device.telemetry(now=NOW))["id"] != envelope["id"]

    rollout_topic = topics.device_topic("sim-1", DeviceChannel.ROLLOUT)
    for payload in (
        device.transition(3, UpdateState.DOWNLOADING, "release 3"),
        device.swap_event(3, SwapState.ACTIVE, "assigned"),
    ):
        (event,) = parse_message(rollout_topic, payload, NOW, 1 << 20).rows
        assert isinstance(event, EventRow) and event.version == "3"
    (active,) = parse_message(
        rollout_topic, device.swap_event(3, SwapState.ACTIVE, "x"), NOW, 1 << 20
    ).rows
    assert isinstance(active, EventRow) and json.loads(active.detail or "{}")["compared"] == 32


def test_slots_roll_back_without_banning_the_release() -> None:
    """A signed rollout rollback returns the device to the previous release, like the agent,
    without rejecting the release it left (a later rollout may retry it); a failed install
    still rejects."""
    device = SimDevice("sim-2", "digits", FaultSettings(), seed=0, active=1)
    device.activate(2)
    assert (device.active, device.previous) == (2, 1)
    device.roll_back(1)
    assert device.active == 1 and 2 not in device.rejected
    device.reject(3, "simulated install failure")
    assert 3 in device.rejected
    offline = json.loads(device.offline())
    assert offline == {"device_id": "sim-2", "state": "offline"}


def test_device_ids_are_the_simulated_devices_broker_users() -> None:
    from edge_agent.fleet.simulator import SimulatorSettings

    assert SimulatorSettings(devices=3, prefix="sim").device_ids() == [
        "sim-0000",
        "sim-0001",
        "sim-0002",
    ]


def test_per_device_credentials_refuse_a_shared_connection(tmp_path) -> None:
    """One connection has one user: the ACL would drop every other device's messages on it."""
    from edge_agent.config import BrokerSettings
    from edge_agent.fleet.simulator import FleetSimulator, SimulatorSettings

    settings = SimulatorSettings(devices=4, devices_per_connection=2)
    with pytest.raises(ConfigError, match="one connection per device"):
        FleetSimulator(
            "mqtt://127.0.0.1:1",
            tmp_path / "root.json",
            tmp_path,
            settings,
            device_broker=lambda device: BrokerSettings(url="mqtt://127.0.0.1:1", username=device),
        )
