"""The one atomic-write helper: old or new content after any failure, fsyncs in the right order."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_agent import _fs
from edge_agent._fs import (
    atomic_writer,
    copy_atomically,
    create_atomically,
    fsync_dir,
    replace_durably,
    write_atomically,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_parents_and_replaces_existing_content(tmp_path):
    target = tmp_path / "a" / "b" / "state.json"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["state.json"]  # no temp file left behind


def test_temp_file_lives_beside_the_target_and_ends_with_tmp(tmp_path):
    """Same directory (a rename across file systems is not atomic); ``.tmp`` for recovery."""
    target = tmp_path / "blob.bin"
    with atomic_writer(target) as handle:
        handle.write(b"x")
        (temp,) = tmp_path.iterdir()
        assert temp.name.startswith(".blob.bin.") and temp.name.endswith(_fs.TEMP_SUFFIX)
        assert not target.exists()  # nothing visible under the real name yet
    assert target.read_bytes() == b"x"


def test_an_error_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("hash mismatch")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_default_mode_is_0644_whatever_the_umask(tmp_path):
    """Packages and metadata are read by other users; a writer's umask 077 must not hide them."""
    old = os.umask(0o077)
    try:
        write_atomically(tmp_path / "m.json", b"{}")
        write_atomically(tmp_path / "u.bin", b"", mode=None)
        write_atomically(tmp_path / "r.bin", b"", mode=0o444)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.json") == 0o644
    assert _mode(tmp_path / "u.bin") == 0o600  # mode=None: the umask decides, as open() does
    assert _mode(tmp_path / "r.bin") == 0o444


def test_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    """The order is what makes a power cut safe: bytes on disk, then the name, then the entry."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def spy_replace(src: object, dst: object) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    target = tmp_path / "state.json"
    write_atomically(target, b"data")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].endswith(_fs.TEMP_SUFFIX)  # the temp file's bytes first
    assert events[2][1] == str(tmp_path)  # then the directory holding the new name


def test_durable_false_skips_the_fsyncs_but_stays_atomic(tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    write_atomically(tmp_path / "sample.npz", b"payload", durable=False)
    assert calls == []
    assert (tmp_path / "sample.npz").read_bytes() == b"payload"


def test_copy_streams_a_large_file(tmp_path):
    source = tmp_path / "big.bin"
    data = os.urandom(3 << 20)
    source.write_bytes(data)
    copy_atomically(source, tmp_path / "out" / "big.bin")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_replace_durably_moves_across_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "key.pem").write_bytes(b"k")
    replace_durably(tmp_path / "a" / "key.pem", tmp_path / "b" / "key.pem")
    assert not (tmp_path / "a" / "key.pem").exists()
    assert (tmp_path / "b" / "key.pem").read_bytes() == b"k"


def test_fsync_dir_refuses_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "nope")


def test_kill_9_during_writes_leaves_the_old_or_the_new_file_never_half(tmp_path):
    """A writer killed at a random moment: the target is always one complete version."""
    target = tmp_path / "state.bin"
    size = 1 << 20
    target.write_bytes(b"\0" * size)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from edge_agent._fs import write_atomically
        print("go", flush=True)
        n = 1
        while True:
            write_atomically(Path({str(target)!r}), bytes([n % 256]) * {size})
            n += 1
        """
    )
    for delay in (0.05, 0.13, 0.29):
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"go\n"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        data = target.read_bytes()
        assert len(data) == size and data == data[:1] * size  # one whole version
        for leftover in tmp_path.glob(f".*{_fs.TEMP_SUFFIX}"):
            leftover.unlink()  # what recovery code removes


def test_create_writes_a_private_new_file_and_never_replaces_one(tmp_path):
    """For private keys: 0600 from the first byte on, and an existing key is never clobbered."""
    key = tmp_path / "keys" / "targets-abc.pem"
    create_atomically(key, b"secret")
    assert key.read_bytes() == b"secret" and _mode(key) == 0o600
    with pytest.raises(FileExistsError):
        create_atomically(key, b"other")
    assert key.read_bytes() == b"secret"
    assert os.listdir(key.parent) == ["targets-abc.pem"]  # no temp file left behind
