"""What the children of the power-loss torture run (tests/integration/test_power_loss.py).

Each function is the real product code doing one area's work with its state on the power-loss
mount; it reports every promise it makes (a record queued, a version active, a state saved) to
``acks`` *after* the call that makes it returned, so the checks can tell what had been promised
when the power went.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.capture.store import Sample, SampleStore
from edge_agent.config import FetchSettings
from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import UpdateLimits, UpdateManager
from edge_agent.fleet.monitor.payloads import TelemetryRow
from edge_agent.fleet.monitor.store import open_store
from edge_agent.fleet.rollout.state import ControllerState, RolloutRecord, StateFile
from edge_agent.telemetry.outbox import Outbox, Priority
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from edge_agent.trust.device.client import DeviceUpdater
from tests.fixtures.zygote import Acks

FETCH = FetchSettings(
    chunk_bytes=4096,
    window=4,
    chunk_timeout_s=1.0,
    max_attempts=4,
    backoff_base_s=0.05,
    backoff_max_s=0.3,
    deadline_s=30,
    flush_every=2,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- delivery: TUF refresh (and root rotation), download (journal, partial file), install, activate


def update(acks: Acks, root: str, broker: str, device_id: str) -> None:
    """The device's update of ``digits`` to its newest signed release, as the agent runs it."""
    base = Path(root)
    client = MqttClient(broker, f"{device_id}-{time.monotonic_ns()}")
    client.connect()
    store = ModelStore(base / "store")
    try:
        manager = UpdateManager(
            store,
            lambda cancel: DeviceUpdater(
                base / "metadata", client, device_id, base / "downloads", FETCH, cancel=cancel
            ),
            lambda topic, payload: None,
            device_id,
            limits=UpdateLimits(refresh_s=20, download_s=30),
        )
        transition = manager.update("digits")
        acks("update", transition.state.value, transition.version)
    finally:
        store.close()
        client.close()


# -- the model store alone: installs, activations, rollbacks, gc


def store_ops(acks: Acks, root: str, sources: list[str], steps: int) -> None:
    """A fixed script of store changes; ack ``step i active v`` after each returns."""
    digests = [sha256(Path(p)) for p in sources]
    with ModelStore(Path(root)) as store:
        for step in range(steps):
            version = step + 1
            i = version % len(sources)
            if store.get("digits", version) is None:
                store.install("digits", version, Path(sources[i]), {"n": version}, digests[i])
            store.activate("digits", version)
            if step % 3 == 2:
                store.rollback("digits")
            if step % 4 == 3:
                store.gc(keep=2)
            active = store.active("digits")
            acks("step", step, "active", active.version if active else None)


# -- the outbox: enqueue, and a drain that acks what "the broker" received


def outbox_ops(acks: Acks, path: str, records: int, drain_every: int) -> None:
    """Enqueue ``records`` one by one; every ``drain_every`` deliver the head and ack it."""
    with Outbox(Path(path)) as box:
        for i in range(records):
            result = box.enqueue(DeviceChannel.TELEMETRY, Priority.TELEMETRY, {"i": i})
            acks("queued", result.record_id)
            if drain_every and i % drain_every == drain_every - 1:
                batch = box.peek(3)
                for record in batch:
                    acks("delivered", record.record_id)  # the broker's PUBACK came back
                box.ack([record.seq for record in batch])


# -- the capture store


def capture_ops(acks: Acks, directory: str, samples: int, max_bytes: int, fsync: bool) -> None:
    with SampleStore(Path(directory), max_bytes=max_bytes, fsync=fsync) as store:
        for i in range(samples):
            x = np.full((1, 8, 8, 1), float(i), np.float32)
            sample_id = store.add(
                Sample("m", "1", "cpu", 0.001, "random", {"input": x}, {"p": x[:, :1, :1, 0]})
            )
            acks("added", sample_id)


# -- the rollout controller's state file


def rollout_ops(acks: Acks, path: str, saves: int) -> None:
    state_file = StateFile(Path(path))
    for i in range(saves):
        with state_file.locked():
            state = state_file.load()
            record = state.rollouts.get("lab") or RolloutRecord(
                id="r1", group="lab", model="digits", release=2, previous=1,
                waves=[0.1, 0.5, 1.0], salt="s", members=["dev-1", "dev-2"], thresholds={},
            )  # fmt: skip
            record.opened = [*record.opened, float(i)]
            record.updated_at = float(i)
            state = ControllerState({"lab": record}, state.withdrawn)
            state_file.save(state)
        acks("saved", i)


# -- the monitor's SQLite


def monitor_ops(acks: Acks, path: str, batches: int, synchronous: str) -> None:
    store = open_store(path, sqlite_synchronous=synchronous)
    try:
        for b in range(batches):
            rows: list[Any] = [_telemetry_row(f"k-{b}-{i}") for i in range(3)]
            store.write_batch(rows, time.time())
            for row in rows:
                acks("committed", row.key)
    finally:
        store.close()


def _telemetry_row(key: str) -> TelemetryRow:
    nothing = (None,) * 7
    return TelemetryRow(key, "dev-1", time.time(), "ok", *nothing)
