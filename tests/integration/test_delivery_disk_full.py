"""A full disk during model delivery: ``models pull`` fails cleanly and the old model serves on.

Two real mechanisms, for the ``edge-agent`` process only:

- a small **tmpfs** mounted as the device's store (real ENOSPC; needs root or CAP_SYS_ADMIN,
  skipped with the reason where mounting is not allowed), filled up by the test mid-download;
- **RLIMIT_FSIZE** (``ulimit -f``) on the pull process (real EFBIG; runs anywhere): the model
  is larger than the process may write.

In every case: exit status 1 with a reason that says the disk is full, the active model still
verifies, the store gains nothing, and no partial file is trusted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.fleet.registry import RegistrySettings
from tests.fakes.delivery_env import DeliveryEnv, chunks_served, delivery_env, pull_command
from tests.fixtures.mosquitto import Broker

pytestmark = pytest.mark.mqtt

MODELS = Path(__file__).resolve().parents[2] / "models"
SMALL = MODELS / "digits" / "digits_fp32.tflite"  # 42 KB: version 1
LARGE = MODELS / "digits32" / "digits32_fp32.tflite"  # 581 KB: version 2
CHUNK = 4096


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is refused)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Write a file into ``directory`` until at most ``leave_bytes`` stay free."""
    filler = directory / "filler.bin"
    block = b"\0" * 4096
    with filler.open("wb") as handle:
        try:
            while True:
                stats = os.statvfs(directory)
                if stats.f_bavail * stats.f_frsize <= leave_bytes:
                    break
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def journal_chunks(download_dir: Path) -> int:
    for journal in download_dir.glob("*.part.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            return len(json.loads(journal.read_text())["done"])
    return 0


def install_v1(env: DeliveryEnv, store_dir: Path, device_id: str) -> list[str]:
    """Publish and pull version 1 (small); return the pull command for later runs."""
    env.publish(SMALL, version="1.0.0")
    command = pull_command(
        env, store_dir, device_id, "--chunk-bytes", str(CHUNK), "--chunk-timeout", "1"
    )
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    return command


def assert_old_model_serves(store_dir: Path) -> None:
    with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
        active = store.active("digits")
        assert active is not None and active.version == 1
        store.verify(active)
        assert [m.version for m in store.list()] == [1]  # nothing staged, nothing half-installed
    assert [p.name for p in (StoreLayout(store_dir).models / "blobs").iterdir()] == [
        active.path.name
    ]


def test_disk_filling_up_mid_download_fails_cleanly_then_resumes(tmp_path: Path, mosquitto: Broker):
    slow = RegistrySettings(rate_per_device=200, burst_per_device=8, notify_poll_s=0.2)
    with (
        tmpfs(tmp_path / "disk", "2m") as disk,
        delivery_env(tmp_path / "env", mosquitto.url, settings=slow) as env,
    ):
        store_dir = disk / "store"
        command = install_v1(env, store_dir, "dev-full")
        release = env.publish(LARGE, version="2.0.0")
        chunks = -(-release.length // CHUNK)
        downloads = StoreLayout(store_dir).trust_downloads

        pull = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while journal_chunks(downloads) < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        filler = fill(disk)  # the disk fills up while the download runs
        out, err = pull.communicate(timeout=60)

        assert pull.returncode == 1, err
        (outcome,) = json.loads(out)
        assert outcome["state"] == "failed" and outcome["version"] == 2
        reason = outcome["reason"]
        assert "No space left on device" in reason and "make room" in reason, reason
        assert "the next pull resumes" in reason
        assert_old_model_serves(store_dir)
        on_disk = journal_chunks(downloads)
        assert 0 < on_disk < chunks  # it really failed mid-download, progress kept

        filler.unlink()  # room again: the next pull resumes, it does not start over
        served_before = chunks_served(env, "dev-full", CHUNK, "targets/")
        again = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)[0]["state"] == "active"
        fetched = chunks_served(env, "dev-full", CHUNK, "targets/") - served_before
        assert fetched <= chunks - on_disk + 8
        with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
            active = store.active("digits")
            assert active is not None and active.sha256 == release.sha256
            store.verify(active)


@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit-fsize"])
def test_model_larger_than_the_room_left_is_refused_before_downloading(
    tmp_path: Path, mosquitto: Broker, mechanism: str
):
    with contextlib.ExitStack() as stack:
        if mechanism == "tmpfs":
            disk = stack.enter_context(tmpfs(tmp_path / "disk", "1m"))
        else:
            disk = tmp_path / "disk"
        env = stack.enter_context(delivery_env(tmp_path / "env", mosquitto.url))
        store_dir = disk / "store"
        command = install_v1(env, store_dir, "dev-small")
        release = env.publish(LARGE, version="2.0.0")
        if mechanism == "tmpfs":
            fill(disk, leave_bytes=300_000)  # 300 KB free, the model needs 581 KB
            expected = ("No space left on device", "make room")
        else:  # the process may not write a file beyond 300 KB (ulimit -f counts KiB)
            command = ["bash", "-c", 'ulimit -f 293 && exec "$@"', "bash", *command]
            expected = ("File too large", "ulimit -f")
        served_before = env.server.served_bytes("dev-small", "targets/")

        pull = subprocess.run(command, capture_output=True, text=True, timeout=60)

        assert pull.returncode == 1, pull.stderr
        (outcome,) = json.loads(pull.stdout)
        assert outcome["state"] == "failed" and outcome["version"] == 2
        reason = outcome["reason"]
        for part in (*expected, f"{release.length} bytes needed", "removed the partial download"):
            assert part in reason, reason
        assert env.server.served_bytes("dev-small", "targets/") == served_before  # no chunk
        assert not list((StoreLayout(store_dir).trust_downloads).glob("*.part*"))
        assert_old_model_serves(store_dir)
