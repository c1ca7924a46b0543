"""Trust never rolls back or wedges after a crash (issue 12, "Trust can roll back").

python-tuf's ngclient recreated ``root.json`` in two steps (delete, then link) on every refresh
and wrote metadata without fsync. A crash between the steps left no ``root.json``, and
provisioning put the factory root back, trusting root keys a rotation had revoked; a crash
before the page cache reached the disk left zero-length files, and a zero-length root made every
later update fail as an internal error. Each test rebuilds the files such a crash leaves (or
kills a real refresh with SIGKILL), then refreshes through the real registry over Mosquitto: the
device either goes on with the rotated root or fails with a message that says how to recover,
and never trusts the revoked factory key.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from edge_agent.delivery.update import UpdateState
from edge_agent.errors import UpdateError
from edge_agent.trust.device.anchor import ANCHOR
from edge_agent.trust.device.client import provision
from edge_agent.trust.operator.keys import generate_key, load_key
from edge_agent.trust.operator.repository import RoleKeys
from tests.fakes.delivery_env import DeliveryEnv, Device, delivery_env
from tests.fixtures.mosquitto import Broker

pytestmark = pytest.mark.mqtt

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture
def env(tmp_path: Path, mosquitto: Broker):
    with delivery_env(tmp_path, mosquitto.url) as environment:
        yield environment


def _refresh(device: Device) -> None:
    with device.updater() as updater:
        updater.refresh()


def _rotated(env: DeliveryEnv) -> tuple[Device, Path]:
    """A device that installed release 1, then followed a root rotation (root v2).

    Returns the device and the retired factory root key (what a thief of it holds).
    """
    env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
    device = env.device()
    assert device.manager().update("digits").state is UpdateState.ACTIVE
    factory_key = next(env.keys_dir.glob("root-*.pem"))
    env.repo.rotate_key("root", RoleKeys(3, 2))
    _refresh(device)
    assert _version(device.metadata_dir / ANCHOR) == 2
    return device, env.keys_dir / "retired" / factory_key.name


def _version(path: Path) -> int:
    return int(json.loads(path.read_bytes())["signed"]["version"])


def _root_keys(path: Path) -> list[str]:
    return sorted(json.loads(path.read_bytes())["signed"]["roles"]["root"]["keyids"])


def _forge_root_v2(env: DeliveryEnv, revoked_key: Path) -> list[str]:
    """The attack a rollback enables: a root v2 signed with the revoked factory key.

    It hands the root role to the attacker's key (valid for the factory root, which trusted
    that key, so a device that fell back to it follows); the registry now serves it.
    """
    factory = Metadata[Root].from_file(str(env.root_json))
    attacker = generate_key(env.tmp / "attacker", "root")
    for keyid in list(factory.signed.roles["root"].keyids):
        factory.signed.revoke_key(keyid, "root")
    factory.signed.add_key(attacker.public_key, "root")
    factory.signed.version = 2
    factory.signatures.clear()
    factory.sign(load_key(revoked_key).signer, append=True)
    factory.sign(attacker.signer, append=True)
    for name in ("2.root.json", "root.json"):
        (env.repo.metadata_dir / name).write_bytes(factory.to_bytes())
    return [attacker.keyid]


def _assert_trusts_the_rotated_root(env: DeliveryEnv, device: Device, forged: list[str]) -> None:
    legit = env.repo.metadata_dir / "2.root.json.legit"
    for path in (device.metadata_dir / ANCHOR, device.metadata_dir / "root.json"):
        assert not path.is_symlink()
        assert _version(path) == 2, path
        assert _root_keys(path) == _root_keys(legit) != forged, path


def _lose_root_json_and_history(device: Device, *, keep_anchor: bool) -> None:
    """What the old two-step replace plus a power cut left: no root.json, a zero-length root."""
    (device.metadata_dir / "root.json").unlink()
    (device.metadata_dir / "root_history" / "2.root.json").write_bytes(b"")
    if not keep_anchor:  # a trust directory written by an edge-agent without the anchor
        (device.metadata_dir / ANCHOR).unlink()


def _keep_legit_root(env: DeliveryEnv) -> None:
    legit = env.repo.metadata_dir / "2.root.json"
    legit.with_name("2.root.json.legit").write_bytes(legit.read_bytes())


def test_crash_between_deleting_and_linking_root_json_never_brings_back_revoked_root_keys(
    env: DeliveryEnv,
):
    """Regression: provision() reinstalled the factory root when a crash had left no root.json."""
    device, revoked = _rotated(env)
    _keep_legit_root(env)
    _lose_root_json_and_history(device, keep_anchor=True)
    forged = _forge_root_v2(env, revoked)
    provision(device.metadata_dir, env.root_json)  # what every agent start does
    assert _version(device.metadata_dir / ANCHOR) == 2
    _refresh(device)
    _assert_trusts_the_rotated_root(env, device, forged)
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    assert device.manager().update("digits").state is UpdateState.ACTIVE


def test_root_json_lost_on_a_device_without_the_anchor_is_recovered_from_root_history(
    env: DeliveryEnv,
):
    """A device provisioned by an older edge-agent: the newest intact root is the anchor."""
    device, _revoked = _rotated(env)
    _keep_legit_root(env)
    (device.metadata_dir / "root.json").unlink()
    (device.metadata_dir / ANCHOR).unlink()
    provision(device.metadata_dir, env.root_json)
    assert not (device.metadata_dir / ANCHOR).exists()  # never the factory root
    _refresh(device)
    _assert_trusts_the_rotated_root(env, device, [])


def test_a_lost_newer_root_is_reported_never_replaced_by_the_factory_root(env: DeliveryEnv):
    """Without an anchor and with root v2's file empty, falling back to v1 is the attack."""
    device, revoked = _rotated(env)
    _keep_legit_root(env)
    _lose_root_json_and_history(device, keep_anchor=False)
    forged = _forge_root_v2(env, revoked)
    provision(device.metadata_dir, env.root_json)
    with pytest.raises(UpdateError) as failure:
        _refresh(device)
    message = str(failure.value)
    for part in ("root version 2", "empty", "will not fall back", "re-provision", "--root"):
        assert part in message, message
    assert not (device.metadata_dir / ANCHOR).exists()
    assert not (device.metadata_dir / "root.json").exists()
    outcome = device.manager().update("digits")  # the update loop reports it, never a crash
    assert outcome.state is UpdateState.FAILED and "re-provision" in outcome.reason
    # Re-provisioned with the current root as the message says, the device goes on.
    (device.metadata_dir).rename(device.root / "metadata.damaged")
    provision(device.metadata_dir, env.repo.metadata_dir / "2.root.json.legit")
    _refresh(device)
    _assert_trusts_the_rotated_root(env, device, forged)


@pytest.mark.parametrize(
    "emptied",
    [
        ["root.json"],
        ["root.json", ANCHOR],
        ["root.json", ANCHOR, "root_history/2.root.json"],
    ],
    ids=["root", "root-and-anchor", "every-copy-of-root-v2"],
)
def test_zero_length_root_after_a_crash_is_recovered_or_clearly_reported(
    env: DeliveryEnv, emptied: list[str]
):
    """Regression: a zero-length root.json made every later update fail as an internal error."""
    device, _revoked = _rotated(env)
    _keep_legit_root(env)
    for name in emptied:
        (device.metadata_dir / name).write_bytes(b"")
    provision(device.metadata_dir, env.root_json)
    if "root_history/2.root.json" in emptied:
        with pytest.raises(UpdateError, match="re-provision") as failure:
            _refresh(device)
        assert "root version 2" in str(failure.value)
        return
    _refresh(device)
    _assert_trusts_the_rotated_root(env, device, [])


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_truncated_metadata_after_a_crash_is_fetched_again_with_the_rotated_root(
    env: DeliveryEnv, role: str
):
    device, _revoked = _rotated(env)
    _keep_legit_root(env)
    path = device.metadata_dir / f"{role}.json"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refresh(device)
    _assert_trusts_the_rotated_root(env, device, [])
    assert json.loads(path.read_bytes())["signed"]["_type"] == role


_REFRESH_LOOP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge_agent.config import FetchSettings
    from edge_agent.transport.client import MqttClient
    from edge_agent.trust.device.client import DeviceUpdater, provision

    broker, metadata, root = sys.argv[1:4]
    settings = FetchSettings(chunk_timeout_s=0.5, backoff_base_s=0.05, backoff_max_s=0.3)
    provision(Path(metadata), Path(root))  # as the agent does at every start
    client = MqttClient(broker, "dev-1-loop")
    client.connect()
    print("ready", flush=True)
    while True:
        downloads = Path(metadata).parent / "downloads"
        with DeviceUpdater(Path(metadata), client, "dev-1", downloads, settings) as updater:
            updater.refresh()
    """
)


def test_sigkill_mid_refresh_never_rolls_trust_back(env: DeliveryEnv):
    """A real process refreshing in a loop, killed with SIGKILL at random points.

    Between kills the operator rotates the root, so kills land in root rotations too; after
    each, a refresh (after provisioning with the factory root, as every start does) trusts the
    newest root.
    """
    device, _revoked = _rotated(env)
    rng = random.Random(12)
    repo_root = Path(__file__).resolve().parents[2]
    for round_ in range(8):
        env.repo.rotate_key("root", RoleKeys(1, 1))
        newest = _version(env.repo.metadata_dir / "root.json")
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _REFRESH_LOOP,
                env.broker_url,
                str(device.metadata_dir),
                str(env.root_json),
            ],
            cwd=repo_root,
            env={**os.environ, "PYTHONPATH": str(repo_root)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
        provision(device.metadata_dir, env.root_json)
        _refresh(device)
        for path in (device.metadata_dir / ANCHOR, device.metadata_dir / "root.json"):
            assert _version(path) == newest, (round_, path)
        assert not list(device.metadata_dir.glob(".*.tmp"))
