"""MonitorHealth over a real SQLite monitor database: the gates see the rollout's devices only."""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.fleet.monitor.store import Store, open_store
from edge_agent.fleet.rollout.gates import FAIL, PASS, GateThresholds, evaluate_gates
from edge_agent.fleet.rollout.health import MonitorHealth
from tests.fakes import fleet_feed as feed

COHORT = ["lab-1", "lab-2"]
GROUP = [*COHORT, "lab-3"]  # lab-3 is in a later wave, still on release 1


def ingest(store: Store, topic: str, payload: bytes) -> None:
    now = time.time()
    store.write_batch(parse_message(topic, payload, now, 1 << 20).rows, now)


def running(store: Store, device: str, version: str) -> None:
    ingest(
        store, f"ea/v1/{device}/status", feed.status(device, models=[("digits", version, "cpu")])
    )


def fill(store: Store) -> None:
    for seq, device in enumerate(COHORT, 1):  # healthy on release 2
        running(store, device, "2")
        ingest(
            store,
            f"ea/v1/{device}/telemetry",
            feed.telemetry(device, seq, version="2", latencies_ms=[6.0] * 100),
        )
    running(store, "lab-3", "1")
    ingest(
        store,
        "ea/v1/lab-3/telemetry",
        feed.telemetry("lab-3", 1, version="1", latencies_ms=[5.0] * 100),
    )
    # outside the rollout: a test bench on release 2 failing, a slow box on release 1
    running(store, "bench-1", "2")
    ingest(
        store,
        "ea/v1/bench-1/telemetry",
        feed.telemetry("bench-1", 1, version="2", latencies_ms=[50.0] * 20, errors=80),
    )
    ingest(
        store,
        "ea/v1/bench-1/rollout",
        feed.rollout("digits", "2", "rejected", "low", agreement=0.2, compared=500),
    )
    running(store, "slow-1", "1")
    ingest(
        store,
        "ea/v1/slow-1/telemetry",
        feed.telemetry("slow-1", 1, version="1", latencies_ms=[1.0] * 100),
    )


def test_devices_outside_the_cohort_do_not_count_in_any_gate(tmp_path: Path) -> None:
    """Regression: error rate, p95, shadow agreement and the baseline were read from every
    device reporting the model and version, so a failing device outside the rollout (here a
    bench with an 80 % error rate and a 0.2 agreement) failed the wave."""
    store = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        fill(store)
        source = MonitorHealth.from_store(store)
        reading = source.reading("digits", 2, 1, COHORT, 300.0, GROUP)
        assert (reading.cohort, reading.on_release, reading.failed) == (2, 2, 0)
        assert reading.errors == 0 and reading.inferences == 200
        assert reading.shadow_agreement is None  # the bench's evidence is not the cohort's
        assert reading.latency_p95_ms is not None and reading.latency_p95_ms < 7.0
        # the baseline is the group's release 1 (lab-3, 5 ms), not the fast box outside it
        assert reading.baseline_p95_ms is not None and 4.5 < reading.baseline_p95_ms < 5.5
        limits = GateThresholds(min_inferences=100)
        assert evaluate_gates(reading, limits).outcome == PASS
        # the same data read for everyone on release 2 fails: what the fix stops
        everyone = source.reading("digits", 2, 1, [*COHORT, "bench-1"], 300.0, GROUP)
        assert evaluate_gates(everyone, limits).outcome == FAIL
    finally:
        store.close()


def test_the_controller_rolls_back_a_release_whose_coral_variant_fails(tmp_path: Path) -> None:
    """A release of two variants through the real controller, gates read by MonitorHealth from
    a real monitor database: forty Pi devices on the int8 variant serve cleanly, two Coral
    devices on the Edge TPU variant fail a fifth of their inferences. Averaged over the
    cohort that is 0.5 %, under the 2 % limit; judged per variant the wave fails, and the
    rollback names the variant."""
    from tuf.api.metadata import TargetFile

    from edge_agent.fleet.rollout.controller import RolloutController
    from edge_agent.trust.operator.repository import OperatorRepository
    from edge_agent.trust.targets import model_custom, model_target_path

    repo = OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")
    for release in (1, 2):
        path = model_target_path("digits", release, "digits_int8.tflite")
        target = TargetFile.from_data(path, f"model {release}".encode(), ["sha256"])
        target.unrecognized_fields["custom"] = model_custom("digits", release, {"version": "1"})
        with repo.edit_targets() as md:
            md.signed.targets[path] = target
    pis = [f"pi-{i:02d}" for i in range(40)]
    corals = ["coral-1", "coral-2"]
    store = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        for seq, device in enumerate([*pis, *corals], 1):
            coral = device in corals
            file = "digits_edgetpu.tflite" if coral else "digits_int8.tflite"
            models = [("digits", "2", "edgetpu" if coral else "xnnpack", file)]
            ingest(store, f"ea/v1/{device}/status", feed.status(device, models=models))
            ingest(
                store,
                f"ea/v1/{device}/telemetry",
                feed.telemetry(
                    device,
                    seq,
                    version="2",
                    latencies_ms=[3.0] * (400 if coral else 1000),
                    errors=100 if coral else 0,
                ),
            )
        controller = RolloutController(
            repo, tmp_path / "rollouts.json", MonitorHealth.from_store(store)
        )
        limits = GateThresholds(min_inferences=100, soak_s=0)
        controller.create("field", "digits", 2, [*pis, *corals], waves=(100,), thresholds=limits)
        decision = controller.step("field")
        record = controller.get("field")
        assert record is not None
        reading = record.last_gates["reading"]
        assert reading["error_rate"] < limits.max_error_rate  # averaged away
        assert set(reading["variants"]) == {"digits_edgetpu.tflite", "digits_int8.tflite"}
        assert reading["variants"]["digits_edgetpu.tflite"]["cohort"] == 2
        assert reading["variants"]["digits_edgetpu.tflite"]["error_rate"] == 0.2
        assert reading["variants"]["digits_int8.tflite"]["error_rate"] == 0.0
        assert decision.action == "roll_back" and record.status == "rolled_back"
        assert "error_rate[digits_edgetpu.tflite]: digits_edgetpu.tflite: 0.2 > 0.02" in (
            decision.reason
        )
    finally:
        store.close()
    # `fleet rollout status` shows each variant's health
    from click.testing import CliRunner

    from edge_agent.cli import cli

    args = ["fleet", "rollout", "status", "--repo", str(tmp_path / "repo")]
    args += ["--keys", str(tmp_path / "keys"), "--state", str(tmp_path / "rollouts.json")]
    shown = CliRunner(env={"COLUMNS": "400"}).invoke(cli, args, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "digits_edgetpu.tflite: 2 device(s), errors 20.00%, p95 3" in shown.output
    assert "digits_int8.tflite: 40 device(s), errors 0.00%, p95 3" in shown.output
