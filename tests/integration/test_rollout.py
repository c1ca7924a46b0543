"""Staged rollouts end to end: real Mosquitto, a signed repository, the registry, the monitor
on SQLite, a simulated fleet doing real TUF verification, and the rollout controller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.config import FetchSettings
from edge_agent.errors import UpdateError
from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings
from edge_agent.fleet.rollout import GateThresholds, RolloutController, partition
from edge_agent.fleet.rollout.health import MonitorHealth
from edge_agent.fleet.simulator import FaultSettings, FleetSimulator, SimulatorSettings
from tests.fakes.delivery_env import DeliveryEnv, delivery_env
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for

FAST_GATES = GateThresholds(
    min_inferences=40,
    soak_s=0.5,
    wave_timeout_s=40,
    window_s=30,
    min_coverage=1.0,
    max_latency_ratio=3.0,
)
FETCH = FetchSettings(chunk_bytes=16384, chunk_timeout_s=1.0, backoff_base_s=0.05)


@contextmanager
def monitor_for(tmp: Path, broker: Broker) -> Iterator[Monitor]:
    tag = uuid.uuid4().hex[:8]
    settings = MonitorSettings(
        http=None,
        alert_interval_s=60,
        mqtt_alerts=False,
        ingest=IngestSettings(client_id=f"mon-{tag}", group=None, clean_session=True),
    )
    with Monitor(f"sqlite:///{tmp / 'monitor.db'}", broker.url, settings) as monitor:
        yield monitor


@contextmanager
def fleet(
    env: DeliveryEnv,
    broker: Broker,
    devices: int,
    faults: FaultSettings | None = None,
    group: str = "lab",
    initial_release: int = 1,
    state: str = "sim",
) -> Iterator[FleetSimulator]:
    settings = SimulatorSettings(
        devices=devices,
        group=group,
        prefix=f"s{uuid.uuid4().hex[:5]}",
        initial_release=initial_release,
        independent=8,
        trust_group_size=16,
        report_interval_s=0.25,
        inferences_per_report=10,
        check_interval_s=5,
        fetch=FETCH,
        faults=faults or FaultSettings(),
    )
    with FleetSimulator(broker.url, env.root_json, env.tmp / state, settings) as simulator:
        yield simulator


def publish_releases(env: DeliveryEnv, models_dir: Path, count: int) -> None:
    model = models_dir / "digits" / "digits_int8.onnx"
    for minor in range(count):
        env.publish(model, "digits", f"1.{minor}.0")


def test_good_release_rolls_out_in_three_waves_and_bad_one_rolls_back(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
) -> None:
    with delivery_env(tmp_path, mosquitto.url) as env, monitor_for(tmp_path, mosquitto) as mon:
        publish_releases(env, models_dir, 3)  # releases 1, 2 (good) and 3 (bad)
        # Release 3 agrees with release 2 in the shadow check but fails in the field.
        faults = FaultSettings(bad_releases=frozenset({3}), bad_error_rate=0.6, bad_agreement=1.0)
        with fleet(env, mosquitto, 40, faults) as sim:
            ids = [d.device_id for d in sim.devices]
            controller = RolloutController(env.repo, tmp_path / "rollouts.json", MonitorHealth(mon))
            waves = partition(ids, [10, 50, 100], "lab")
            assert all(waves), "every wave has devices"

            controller.create("lab", "digits", 2, ids, waves=(10, 50, 100), thresholds=FAST_GATES)
            sim.wake()
            done = controller.follow("lab", poll_s=0.3)
            assert done.status == "completed", done.history[-1]
            assert [h["event"] for h in done.history] == [
                "created",
                "advance",
                "advance",
                "complete",
            ]
            advances = [h for h in done.history if h["event"] in ("advance", "complete")]
            for wave_index, event in enumerate(advances):
                cohort = sum(len(w) for w in waves[: wave_index + 1])
                coverage = next(c for c in event["gates"]["checks"] if c["name"] == "coverage")
                assert coverage["value"] == 1.0, (wave_index, coverage, cohort)
            assert sim.active_counts() == {2: 40}

            controller.create("lab", "digits", 3, ids, waves=(10, 50, 100), thresholds=FAST_GATES)
            sim.wake()
            bad = controller.follow("lab", poll_s=0.3)
            assert bad.status == "rolled_back", bad.history[-1]
            assert bad.previous == 2
            assert bad.opened and len(bad.opened) == 1, "halted at wave 1"
            assert "error_rate" in bad.reason
            wait_for(lambda: sim.active_counts() == {2: 40}, 30, "every device back on 2")
            canaries = set(waves[0])
            for device in sim.devices:
                # the fleet's gates failed, not the device: release 3 is left, not banned
                assert 3 not in device.rejected, device.device_id
                if device.device_id not in canaries:
                    assert device.installs == 1, "devices outside wave 1 never got release 3"
            with pytest.raises(UpdateError, match="rolled back in group"):
                controller.create("lab", "digits", 3, ids, thresholds=FAST_GATES)


def test_device_outside_the_cohort_reporting_errors_does_not_fail_the_wave(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
) -> None:
    """Regression: the gates read every device that reports the model and version, so devices
    of another group already running release 2 with a 60 % error rate rolled back a healthy
    rollout of release 2 in ``lab`` (and its canaries then rejected release 2 for good)."""
    with delivery_env(tmp_path, mosquitto.url) as env, monitor_for(tmp_path, mosquitto) as mon:
        publish_releases(env, models_dir, 2)
        outside = FaultSettings(bad_releases=frozenset({2}), bad_error_rate=0.6)
        with (
            fleet(env, mosquitto, 6, outside, "other", initial_release=2, state="other") as other,
            fleet(env, mosquitto, 10) as sim,
        ):
            outsiders = {d.device_id for d in other.devices}
            wait_for(
                lambda: (mon.version_health("digits", "2", window_s=30).errors or 0) > 40,
                30,
                "the outside devices' errors in the monitor",
            )
            ids = [d.device_id for d in sim.devices]
            controller = RolloutController(env.repo, tmp_path / "rollouts.json", MonitorHealth(mon))
            controller.create("lab", "digits", 2, ids, waves=(50, 100), thresholds=FAST_GATES)
            sim.wake()
            done = controller.follow("lab", poll_s=0.3)
            assert done.status == "completed", done.history[-1]
            assert sim.active_counts() == {2: 10}
            assert other.active_counts() == {2: 6}
            for event in done.history[1:]:
                error_rate = next(c for c in event["gates"]["checks"] if c["name"] == "error_rate")
                assert error_rate["value"] is not None and error_rate["value"] < 0.1, event
            # the fleet-wide view still sees the outsiders' errors: only the gates are scoped
            fleet_wide = mon.version_health("digits", "2", window_s=30)
            assert fleet_wide.error_rate is not None and fleet_wide.error_rate > 0.1
            assert outsiders.isdisjoint(ids)


def test_paused_rollout_does_not_advance_until_resumed(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
) -> None:
    with delivery_env(tmp_path, mosquitto.url) as env, monitor_for(tmp_path, mosquitto) as mon:
        publish_releases(env, models_dir, 2)
        with fleet(env, mosquitto, 20, group="g2") as sim:
            ids = [d.device_id for d in sim.devices]
            controller = RolloutController(env.repo, tmp_path / "rollouts.json", MonitorHealth(mon))
            controller.create("g2", "digits", 2, ids, waves=(25, 100), thresholds=FAST_GATES)
            controller.pause("g2")
            sim.wake()
            canaries = set(partition(ids, [25, 100], "g2")[0])
            wait_for(
                lambda: sum(d.active == 2 for d in sim.devices) == len(canaries),
                30,
                "wave 1 to install while paused",
            )
            deadline = time.monotonic() + 3 * FAST_GATES.soak_s + 2
            while time.monotonic() < deadline:
                assert controller.step("g2").action == "wait"
            record = controller.get("g2")
            assert record is not None and record.status == "paused" and len(record.opened) == 1
            assert {d.device_id for d in sim.devices if d.active == 2} == canaries

            controller.resume("g2")
            done = controller.follow("g2", poll_s=0.3)
            assert done.status == "completed"
            wait_for(lambda: sim.active_counts() == {2: 20}, 30, "all devices on 2")


def test_timeout_ends_a_rollout_whose_gates_never_get_data(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
) -> None:
    with delivery_env(tmp_path, mosquitto.url) as env, monitor_for(tmp_path, mosquitto) as mon:
        publish_releases(env, models_dir, 2)
        gates = GateThresholds(soak_s=0, wave_timeout_s=1.5, window_s=10)
        controller = RolloutController(env.repo, tmp_path / "rollouts.json", MonitorHealth(mon))
        controller.create("ghosts", "digits", 2, ["ghost-1", "ghost-2"], thresholds=gates)
        started = time.monotonic()
        record = controller.follow("ghosts", poll_s=0.2)
        assert record.status == "timed_out"
        assert "did not pass its gates within" in record.reason
        assert time.monotonic() - started < 10
        restarted = RolloutController(env.repo, tmp_path / "rollouts.json", MonitorHealth(mon))
        assert restarted.step("ghosts").action == "none"


def test_rejects_tampered_rollout_document(tmp_path: Path, mosquitto: Broker) -> None:
    """A registry that swaps the plan's bytes (or serves an unsigned plan) moves no device."""
    from edge_agent.delivery.following import fetch_rollout
    from edge_agent.delivery.rollout_document import RolloutDocument
    from edge_agent.fleet.rollout import publish_rollout

    with delivery_env(tmp_path, mosquitto.url) as env:
        device = env.device(f"t{uuid.uuid4().hex[:6]}")
        doc = RolloutDocument("r1", "lab", "digits", 2, 1, (100.0,), "lab", opened=(1.0,))
        target = publish_rollout(env.repo, doc)
        with device.updater() as updater:
            updater.refresh()
            assert fetch_rollout(updater, "lab") == doc
            assert fetch_rollout(updater, "unsigned") is None
        stored = env.repo.targets_dir / target.get_prefixed_paths()[0]
        stored.write_bytes(doc.evolve(state="completed").to_bytes())  # same length, new bytes
        (env.repo.targets_dir / "rollouts" / "unsigned.json").write_bytes(doc.to_bytes())
        with device.updater() as updater:
            updater.refresh()
            with pytest.raises(UpdateError, match="does not match signed metadata"):
                fetch_rollout(updater, "lab")
            assert fetch_rollout(updater, "unsigned") is None
