"""zstd patch-from through the system libzstd: deltas rebuild exactly, or fail loudly."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from edge_agent import _zstd


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """An old file and a new one that differs in one region (like a retrained layer)."""
    old = bytes(range(256)) * 2000 + b"tail" * 100
    new = bytearray(old)
    new[100_000:104_000] = bytes((i * 7) % 251 for i in range(4000))
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(bytes(new))
    return tmp_path / "old", tmp_path / "new"


def test_libzstd_is_here():
    """CI's machines and the supported device OSes ship libzstd1; deltas need it."""
    assert _zstd.unavailable() == ""


def test_delta_rebuilds_the_new_file_and_is_small(pair: tuple[Path, Path], tmp_path: Path):
    old, new = pair
    delta = _zstd.encode(old, new)
    assert len(delta) < new.stat().st_size // 20
    (tmp_path / "delta").write_bytes(delta)
    _zstd.decode(old, tmp_path / "delta", tmp_path / "out", new.stat().st_size)
    assert (tmp_path / "out").read_bytes() == new.read_bytes()


def test_delta_from_an_empty_file_is_plain_compression(tmp_path: Path, pair: tuple[Path, Path]):
    _old, new = pair
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "delta").write_bytes(_zstd.encode(tmp_path / "empty", new))
    _zstd.decode(tmp_path / "empty", tmp_path / "delta", tmp_path / "out", new.stat().st_size)
    assert (tmp_path / "out").read_bytes() == new.read_bytes()


def test_corrupted_delta_fails_its_checksum(pair: tuple[Path, Path], tmp_path: Path):
    old, new = pair
    delta = bytearray(_zstd.encode(old, new))
    delta[len(delta) // 2] ^= 0xFF
    (tmp_path / "delta").write_bytes(bytes(delta))
    with pytest.raises(_zstd.PatchError, match="libzstd failed decoding"):
        _zstd.decode(old, tmp_path / "delta", tmp_path / "out", new.stat().st_size)


def test_delta_applied_to_another_base_fails(pair: tuple[Path, Path], tmp_path: Path):
    old, new = pair
    (tmp_path / "delta").write_bytes(_zstd.encode(old, new))
    other = tmp_path / "other"
    other.write_bytes(bytes(reversed(old.read_bytes())))
    with pytest.raises(_zstd.PatchError):
        _zstd.decode(other, tmp_path / "delta", tmp_path / "out", new.stat().st_size)


def test_delta_declaring_another_size_than_the_signed_one_is_refused_before_decoding(
    pair: tuple[Path, Path], tmp_path: Path
):
    old, new = pair
    (tmp_path / "delta").write_bytes(_zstd.encode(old, new))
    with pytest.raises(_zstd.PatchError, match="not the signed"):
        _zstd.decode(old, tmp_path / "delta", tmp_path / "out", new.stat().st_size - 1)


def test_garbage_is_not_a_delta(pair: tuple[Path, Path], tmp_path: Path):
    old, _new = pair
    (tmp_path / "delta").write_bytes(b"not zstd at all" * 10)
    with pytest.raises(_zstd.PatchError, match="not a zstd frame"):
        _zstd.decode(old, tmp_path / "delta", tmp_path / "out", 100)


def test_a_full_disk_is_an_error_not_a_crash(pair: tuple[Path, Path], tmp_path: Path):
    """Regression: the output was mapped sparse, so a full disk was SIGBUS, not ENOSPC.

    Writing through a mapping that the disk cannot hold kills the process with SIGBUS.
    """
    old, new = pair
    (tmp_path / "delta").write_bytes(_zstd.encode(old, new))
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        with pytest.raises(OSError) as raised:
            _zstd.decode(old, tmp_path / "delta", small / "out", new.stat().st_size)
        assert raised.value.errno == errno.ENOSPC
    finally:
        subprocess.run(["umount", "--lazy", str(small)], check=True)
