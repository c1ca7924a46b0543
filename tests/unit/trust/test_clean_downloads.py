"""Downloads that are of no more use are deleted, so the download directory cannot fill the disk."""

from __future__ import annotations

from pathlib import Path

from edge_agent.trust.device.client import clean_downloads


def make(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"x")


def test_finished_downloads_go_once_the_store_holds_them_partials_only_when_up_to_date(
    tmp_path: Path,
):
    """Regression: trust/downloads kept every model after the store copied it, and the partials
    of superseded releases, until the disk filled (and then the outbox and capture failed)."""
    installed, other = "a" * 64, "b" * 64
    make(
        tmp_path,
        f"{installed}.model.tflite",
        f"{other}.model.onnx",
        f"{other}.next.onnx.part",
        f"{other}.next.onnx.part.json",
    )
    assert clean_downloads(tmp_path, {installed}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{other}.model.onnx",
        f"{other}.next.onnx.part",
        f"{other}.next.onnx.part.json",
    ]  # not in the store yet (it may be retried), and partials still resumable
    assert clean_downloads(tmp_path, {installed}, partials=True) == 2
    assert [p.name for p in tmp_path.iterdir()] == [f"{other}.model.onnx"]
    assert clean_downloads(tmp_path / "missing", set()) == 0
