"""Power-loss torture (issue 13): hundreds of seeded power cuts through the real code.

Every area keeps its state on the power-loss file system (tests/fixtures/powerloss_fs.py):
unsynced data and names whose directory was not fsynced are lost at a cut, optionally torn.
For each seed the disk is reset to the area's baseline, a forked child (tests/fixtures/
zygote.py) runs the real code (power_loss_scenarios.py), and the file system cuts the power
inside the child's Nth write, fsync or rename (N seeded over the operations a clean run makes).
After the cut only the durable state is left; the checks then hold the area to its promise and
restart the work:

- delivery (TUF refresh, root rotation, download journal and partial file, install,
  activation): the store opens, the active model's bytes hash as the signed metadata says,
  trusted metadata never goes back in version, and a restarted update finishes on the newest
  release;
- the model store: every listed version verifies, and an activation that returned survived;
- the outbox: no record acknowledged as queued is lost (each is still queued or was delivered);
- the capture store: it reopens consistent (every indexed sample loads, no orphans);
- the rollout controller: the state file loads, and a save that returned survived;
- the monitor's SQLite: integrity holds, and with ``synchronous=FULL`` every committed row
  survives (SQLite's own promise; ``NORMAL`` promises consistency only).

``EDGE_AGENT_TORTURE_CUTS=N`` runs N cuts per area instead of the CI default (a bigger soak).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_agent.capture.store import SampleStore
from edge_agent.delivery.store import ModelStore
from edge_agent.fleet.monitor.store import open_store
from edge_agent.fleet.rollout.state import StateFile
from edge_agent.telemetry.outbox import Outbox
from edge_agent.trust.device.client import provision
from edge_agent.trust.operator.repository import RoleKeys
from tests.fakes.delivery_env import DeliveryEnv
from tests.fixtures.mosquitto import Broker
from tests.fixtures.powerloss_fs import KINDS, PowerLossFS, fuse_available
from tests.fixtures.zygote import Acks, Zygote

MODELS = Path(__file__).resolve().parents[2] / "models"
SCENARIOS = "tests.integration.power_loss_scenarios"
ROLES = ("trusted_root", "root", "timestamp", "snapshot", "targets")


def cuts(default: int) -> int:
    """Cuts per area: the CI default, or ``EDGE_AGENT_TORTURE_CUTS``."""
    return int(os.environ.get("EDGE_AGENT_TORTURE_CUTS", "0") or 0) or default


@dataclass
class Rig:
    fs: PowerLossFS
    zygote: Zygote
    work: Path
    fired: dict[str, int] = field(default_factory=dict)

    @property
    def mnt(self) -> Path:
        return self.fs.mountpoint

    def acks(self, name: str) -> Acks:
        path = self.work / f"{name}.acks"
        path.unlink(missing_ok=True)
        return Acks(path)

    def run(self, fn: str, acks: Acks, **kwargs: object) -> int:
        return self.zygote.run(f"{SCENARIOS}:{fn}", acks.path, **kwargs)

    def torture(
        self,
        area: str,
        snapshot: Path,
        fn: str,
        kwargs: dict[str, object],
        check: Callable[[Acks, int], None],
        n: int,
    ) -> None:
        """``n`` seeded cuts of ``fn`` from ``snapshot``; ``check(acks, seed)`` after each."""
        self.fs.reset(snapshot)
        before = self.fs.status()["counts"]
        clean = self.acks(area)
        assert self.run(fn, clean, **kwargs) == 0, (self.zygote.stderr_path.read_text())[-3000:]
        after = self.fs.status()["counts"]
        ops = {kind: after[kind] - before[kind] for kind in KINDS}
        check(clean, -1)  # the clean run meets the promise too
        fired = 0
        for seed in range(n):
            rng = random.Random(f"{area}-{seed}")
            kinds = [k for k in KINDS if ops[k]]
            kind = kinds[seed % len(kinds)]
            self.fs.reset(snapshot)
            acks = self.acks(area)
            self.fs.arm(kind, rng.randint(1, ops[kind]))
            rc = self.run(fn, acks, **kwargs)
            if self.fs.status()["dead"]:
                fired += 1
                assert rc == -9, f"{area} seed {seed}: the cut did not kill the child ({rc})"
            else:
                self.fs.disarm()
            self.fs.recover(torn=seed % 3 == 0, seed=seed)
            try:
                check(acks, seed)
            except AssertionError as exc:
                raise AssertionError(f"{area}, seed {seed}, cut at {kind}: {exc}") from exc
        self.fired[area] = fired
        print(f"power-loss torture: {area}: {fired} of {n} cuts fired, {ops} operations a run")
        assert fired >= n * 0.8, f"{area}: only {fired} of {n} cuts fired"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    missing = fuse_available()
    if missing:
        pytest.skip(f"the power-loss torture needs FUSE: {missing}")
    work = tmp_path_factory.mktemp("power")
    zygote = Zygote(SCENARIOS, stderr=work / "zygote.stderr")
    with PowerLossFS(work / "backing", work / "mnt") as fs:
        fs.protect.add(zygote.pid)
        yield Rig(fs, zygote, work)
    zygote.close()


# -- delivery ------------------------------------------------------------------------------------


def _versions(metadata: Path) -> dict[str, int]:
    found = {}
    for role in ROLES:
        path = metadata / f"{role}.json"
        if path.exists():
            found[role] = int(json.loads(path.read_bytes())["signed"]["version"])
    return found


def _check_store_serves_signed(store_dir: Path, signed: dict[int, str]) -> int | None:
    with ModelStore(store_dir) as store:
        active = store.active("digits")
        for model in store.list():
            store.verify(model)
        if active is None:
            return None
        assert active.sha256 == signed[active.version], "active model is not the signed one"
        return active.version


@pytest.mark.mqtt
def test_power_cuts_during_updates_and_root_rotation(
    rig: Rig, tmp_path: Path, mosquitto: Broker
) -> None:
    env = DeliveryEnv(tmp_path, mosquitto.url)
    try:
        device = rig.mnt / "device"
        kwargs: dict[str, object] = {
            "root": str(device), "broker": mosquitto.url, "device_id": "dev-1",
        }  # fmt: skip
        rig.fs.reset(_empty(rig))
        signed = {1: env.publish(MODELS / "digits" / "digits_int8.tflite", version="1.0.0").sha256}
        provision(device / "metadata", env.root_json)
        first = rig.acks("first")
        assert rig.run("update", first, **kwargs) == 0
        assert first.lines() == [["update", "active", "1"]]
        baseline = rig.work / "delivery-baseline"
        rig.fs.save(baseline)
        trusted = _versions(baseline / "device" / "metadata")
        assert _check_store_serves_signed(baseline / "device" / "store", signed) == 1
        signed[2] = env.publish(MODELS / "digits" / "digits_fp32.tflite", version="2.0.0").sha256

        def check(acks: Acks, seed: int, root_version: int = 1) -> None:
            now = _versions(device / "metadata")
            for role, version in trusted.items():
                assert now.get(role, 0) >= version, f"trusted {role} went back: {now}"
            served = _check_store_serves_signed(device / "store", signed)
            assert served in (1, 2), "no model served after the cut"
            if ["update", "active", "2"] in acks.lines():
                assert served == 2, "an activation that was reported was lost"
            if seed % 3:
                return  # a restart costs a full update: every third cut restarts
            restart = rig.acks("restart")
            assert rig.run("update", restart, **kwargs) == 0
            assert restart.lines() == [["update", "active", "2"]], restart.lines()
            assert _check_store_serves_signed(device / "store", signed) == 2
            assert _versions(device / "metadata")["trusted_root"] == root_version

        rig.torture("update", baseline, "update", kwargs, check, cuts(12))
        env.repo.rotate_key("root", RoleKeys(3, 2))
        rig.torture(
            "root rotation",
            baseline,
            "update",
            kwargs,
            lambda acks, seed: check(acks, seed, root_version=2),
            cuts(10),
        )
    finally:
        env.close()


def _empty(rig: Rig) -> Path:
    empty = rig.work / "empty"
    empty.mkdir(exist_ok=True)
    return empty


# -- the model store -----------------------------------------------------------------------------


def test_power_cuts_during_installs_activations_and_gc(rig: Rig) -> None:
    sources = [
        str(MODELS / "digits" / n)
        for n in ("digits_int8.tflite", "digits_int8.onnx", "digits_fp32.onnx")
    ]
    steps = 5
    root = rig.mnt / "store"
    clean = rig.acks("store-plan")
    assert rig.zygote.run(
        f"{SCENARIOS}:store_ops", clean.path, root=str(rig.work / "plan"), sources=sources,
        steps=steps,
    ) == 0  # fmt: skip
    plan = [None, *(None if line[3] == "None" else int(line[3]) for line in clean.lines())]

    def check(acks: Acks, seed: int) -> None:
        done = len(acks.lines())  # steps that returned
        with ModelStore(root) as store:
            for model in store.list():
                store.verify(model)
            active = store.active("digits")
            version = None if active is None else active.version
            allowed = set(plan[done : done + 2]) | set(
                # the step in flight may have activated its version before its rollback
                [done + 1] if done < steps else []
            )
            assert version in allowed, f"active {version} after {done} steps, plan {plan}"
            assert not list(root.glob(".*.tmp"))

    rig.torture(
        "store", _empty(rig), "store_ops", {"root": str(root), "sources": sources, "steps": steps},
        check, cuts(28),
    )  # fmt: skip


# -- the outbox ----------------------------------------------------------------------------------


def test_power_cuts_during_outbox_enqueue_and_drain(rig: Rig) -> None:
    path = rig.mnt / "outbox" / "outbox.db"

    def check(acks: Acks, seed: int) -> None:
        queued = {w[1] for w in acks.lines() if w[0] == "queued"}
        delivered = {w[1] for w in acks.lines() if w[0] == "delivered"}
        with Outbox(path) as box:
            still = {r.record_id for r in box.peek(10_000)}
        lost = queued - still - delivered
        assert not lost, f"records acknowledged as queued were lost: {sorted(lost)}"
        assert _integrity(path)

    rig.torture(
        "outbox", _empty(rig), "outbox_ops", {"path": str(path), "records": 12, "drain_every": 4},
        check, cuts(40),
    )  # fmt: skip


def _integrity(path: Path) -> bool:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


# -- the capture store ---------------------------------------------------------------------------


@pytest.mark.parametrize("fsync", [True, False])
def test_power_cuts_during_capture(rig: Rig, fsync: bool) -> None:
    """``capture.fsync: false`` may lose samples, never keep a half-written one indexed."""
    directory = rig.mnt / "samples"

    def check(acks: Acks, seed: int) -> None:
        with SampleStore(directory, max_bytes=6_000, fsync=fsync) as store:
            samples = store.list()
            for info in samples:
                payload = store.payload_bytes(info.id)
                assert hashlib.sha256(payload).hexdigest() == info.sha256, "half-written sample"
                inputs, _outputs = store.load(info.id)
                assert inputs["input"].shape == (1, 8, 8, 1)
            files = sorted(p.name for p in store.payload_dir.iterdir())
            assert files == sorted(f"{s.id}.npz" for s in samples), "orphans or temp files"
            assert store.stats()["bytes"] == sum(s.size for s in samples)

    rig.torture(
        f"capture fsync={fsync}", _empty(rig), "capture_ops",
        {"directory": str(directory), "samples": 8, "max_bytes": 6_000, "fsync": fsync}, check,
        cuts(17 if fsync else 12),
    )  # fmt: skip


# -- the rollout controller ----------------------------------------------------------------------


def test_power_cuts_during_rollout_controller_saves(rig: Rig) -> None:
    path = rig.mnt / "rollouts" / "state.json"

    def check(acks: Acks, seed: int) -> None:
        saved = [int(w[1]) for w in acks.lines()]
        state = StateFile(path).load()  # never half a file: UpdateError would fail here
        record = state.rollouts.get("lab")
        got = -1 if record is None else int(record.updated_at)
        if saved:
            assert got >= saved[-1], f"save {saved[-1]} returned but the file holds {got}"

    rig.torture(
        "rollout", _empty(rig), "rollout_ops", {"path": str(path), "saves": 6}, check, cuts(35)
    )


# -- the monitor's SQLite ------------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_power_cuts_during_monitor_writes(rig: Rig, synchronous: str) -> None:
    path = rig.mnt / "monitor" / "monitor.db"

    def check(acks: Acks, seed: int) -> None:
        committed = {w[1] for w in acks.lines()}
        assert _integrity(path) if path.exists() else not committed
        store = open_store(str(path), sqlite_synchronous=synchronous)  # reopens and migrates
        try:
            keys = {r["rkey"] for r in store.rows("SELECT rkey FROM telemetry")}
        finally:
            store.close()
        if synchronous == "FULL":
            assert committed <= keys, f"committed rows lost: {sorted(committed - keys)}"

    rig.torture(
        f"monitor {synchronous}", _empty(rig), "monitor_ops",
        {"path": str(path), "batches": 4, "synchronous": synchronous}, check,
        cuts(30 if synchronous == "FULL" else 20),
    )  # fmt: skip
