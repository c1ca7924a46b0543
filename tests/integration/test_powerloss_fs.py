"""The power-loss file system itself (tests/fixtures/powerloss_fs.py) keeps its promises.

Each test writes through a real FUSE mount, cuts the power and checks what a disk would hold:
unsynced data is lost, fsynced data survives, a rename or a new name survives only with an
fsync of its directory, a torn write keeps a prefix, and an armed cut kills the writer inside
its Nth operation. Without FUSE (no /dev/fuse, no fusermount3, no mfusepy) these tests skip,
which CI turns into a failure (tests/fixtures/ci_skips.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.powerloss_fs import PowerLossFS, fuse_available


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[PowerLossFS]:
    missing = fuse_available()
    if missing:
        pytest.skip(f"the power-loss FS needs FUSE: {missing}")
    with PowerLossFS(tmp_path / "backing", tmp_path / "mnt") as mounted:
        yield mounted


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_write_is_lost(fs: PowerLossFS) -> None:
    target = fs.mountpoint / "f"
    _write(target, b"old", sync=True)
    _sync_dir(fs.mountpoint)
    _write(target, b"new and longer", sync=False)
    fs.recover()
    assert target.read_bytes() == b"old"


def test_fsynced_write_survives(fs: PowerLossFS) -> None:
    target = fs.mountpoint / "f"
    _write(target, b"kept", sync=True)
    _sync_dir(fs.mountpoint)
    fs.recover()
    assert target.read_bytes() == b"kept"


def test_fdatasync_counts_as_fsync(fs: PowerLossFS) -> None:
    target = fs.mountpoint / "f"
    with target.open("wb") as handle:
        handle.write(b"data")
        handle.flush()
        os.fdatasync(handle.fileno())
    _sync_dir(fs.mountpoint)
    fs.recover()
    assert target.read_bytes() == b"data"


def test_new_file_without_directory_fsync_is_lost(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "f", b"synced data, unsynced name", sync=True)
    fs.recover()
    assert not (fs.mountpoint / "f").exists()


def test_name_synced_but_data_not_leaves_an_empty_file(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "f", b"never fsynced", sync=False)
    _sync_dir(fs.mountpoint)
    fs.recover()
    assert (fs.mountpoint / "f").read_bytes() == b""


def test_rename_without_directory_fsync_is_lost(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "target", b"v1", sync=True)
    _sync_dir(fs.mountpoint)
    _write(fs.mountpoint / "tmp", b"v2", sync=True)
    os.replace(fs.mountpoint / "tmp", fs.mountpoint / "target")
    assert (fs.mountpoint / "target").read_bytes() == b"v2"  # live: the new one
    fs.recover()
    assert (fs.mountpoint / "target").read_bytes() == b"v1"
    assert not (fs.mountpoint / "tmp").exists()  # the temp name was never durable either


def test_rename_with_directory_fsync_is_kept(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "target", b"v1", sync=True)
    _sync_dir(fs.mountpoint)
    _write(fs.mountpoint / "tmp", b"v2", sync=True)
    os.replace(fs.mountpoint / "tmp", fs.mountpoint / "target")
    _sync_dir(fs.mountpoint)
    fs.remount()  # a real unmount and mount: the same durable state
    assert (fs.mountpoint / "target").read_bytes() == b"v2"
    assert sorted(os.listdir(fs.mountpoint)) == ["target"]


def test_unlink_without_directory_fsync_comes_back(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "f", b"still here", sync=True)
    _sync_dir(fs.mountpoint)
    (fs.mountpoint / "f").unlink()
    fs.recover()
    assert (fs.mountpoint / "f").read_bytes() == b"still here"


def test_new_directory_needs_its_parent_synced(fs: PowerLossFS) -> None:
    sub = fs.mountpoint / "sub"
    sub.mkdir()
    _write(sub / "f", b"x", sync=True)
    _sync_dir(sub)
    fs.recover()
    assert not sub.exists()  # the parent never recorded "sub"
    sub.mkdir()
    _write(sub / "f", b"x", sync=True)
    _sync_dir(sub)
    _sync_dir(fs.mountpoint)
    fs.recover()
    assert (sub / "f").read_bytes() == b"x"


def test_hard_link_keeps_one_inode(fs: PowerLossFS) -> None:
    _write(fs.mountpoint / "a", b"shared", sync=True)
    os.link(fs.mountpoint / "a", fs.mountpoint / "b")
    _sync_dir(fs.mountpoint)
    fs.recover()
    assert (fs.mountpoint / "b").read_bytes() == b"shared"
    assert os.stat(fs.mountpoint / "b").st_nlink == 2
    _write(fs.mountpoint / "a", b"changed", sync=True)  # one inode: fsync through either name
    fs.recover()
    assert (fs.mountpoint / "b").read_bytes() == b"changed"


def test_torn_write_keeps_a_prefix_of_the_unsynced_bytes(fs: PowerLossFS) -> None:
    target = fs.mountpoint / "f"
    durable = b"a" * 1000
    _write(target, durable, sync=True)
    _sync_dir(fs.mountpoint)
    seen = set()
    for seed in range(8):
        _write(target, b"b" * 1000, sync=False)
        assert fs.recover(torn=True, seed=seed) == 1
        data = target.read_bytes()
        cut = len(data) - len(data.lstrip(b"b"))
        assert data == b"b" * cut + durable[cut:]  # a prefix of the new bytes, then the old
        seen.add(cut)
    assert len(seen) > 1  # the seed moves the tear


WRITER = textwrap.dedent("""
    import os, sys
    path = sys.argv[1]
    with open(path, "wb", buffering=0) as handle:
        for i in range(100):
            handle.write(b"%d\\n" % i)
            print(i, flush=True)
""")


def test_armed_cut_kills_the_writer_inside_its_nth_write(fs: PowerLossFS) -> None:
    fs.arm("write", 5)
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(fs.mountpoint / "log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert writer.returncode == -9  # SIGKILL, sent by the file system
    assert writer.stdout.split() == ["0", "1", "2", "3"]  # the 5th write never returned
    assert fs.status()["dead"]
    with pytest.raises(OSError):
        (fs.mountpoint / "log").read_bytes()  # nothing works until the power is back
    fs.recover()
    assert not (fs.mountpoint / "log").exists()  # neither its data nor its name were synced


def test_the_test_runner_is_never_counted_or_killed(fs: PowerLossFS) -> None:
    fs.arm("write", 1)
    _write(fs.mountpoint / "f", b"mine", sync=True)
    assert fs.disarm() == 0
    assert not fs.status()["dead"]


def test_atomic_write_into_new_directories_survives_a_cut(fs: PowerLossFS) -> None:
    """Regression: write_atomically created missing parents without fsyncing the directories
    above them, so a store made on first boot vanished whole at the next power cut."""
    from edge_agent._fs import write_atomically

    target = fs.mountpoint / "state" / "rollouts" / "state.json"
    write_atomically(target, b"{}")
    fs.recover()
    assert target.read_bytes() == b"{}"
