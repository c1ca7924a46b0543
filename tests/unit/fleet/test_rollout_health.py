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
