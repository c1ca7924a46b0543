"""The model store: slots, atomic activation, rejection, tamper detection, GC, locking."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from edge_agent.delivery.store import ModelStore
from edge_agent.errors import ModelError, UpdateError

MODELS = Path(__file__).resolve().parents[3] / "models"
FP32 = MODELS / "digits" / "digits_fp32.tflite"
INT8 = MODELS / "digits" / "digits_int8.onnx"
INT8_TFLITE = MODELS / "digits" / "digits_int8.tflite"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(store: ModelStore, version: int, source: Path):
    return store.install("digits", version, source, {"version": f"1.{version}.0"}, sha(source))


def test_install_stages_activate_promotes_and_keeps_previous(tmp_path: Path):
    with ModelStore(tmp_path) as store:
        staged = install(store, 1, FP32)
        assert staged.state == "staged" and staged.path.suffix == ".tflite"
        assert staged.path.read_bytes() == FP32.read_bytes()
        store.activate("digits", 1)
        install(store, 2, INT8)
        store.activate("digits", 2)
        assert store.active("digits").version == 2  # type: ignore[union-attr]
        assert store.previous("digits").version == 1  # type: ignore[union-attr]
        assert store.staged("digits") is None
        assert store.rollback("digits").version == 1
        assert store.previous("digits") is None
        assert {m.version: m.state for m in store.list()} == {1: "active", 2: "inactive"}
    with ModelStore(tmp_path, readonly=True) as reopened:  # state survives a restart
        assert reopened.active("digits").version == 1  # type: ignore[union-attr]


def test_install_refuses_bytes_that_do_not_match_the_hash(tmp_path: Path):
    with ModelStore(tmp_path) as store, pytest.raises(UpdateError, match="tampered"):
        store.install("digits", 1, FP32, {}, sha(INT8))
    assert not list((tmp_path / "blobs").iterdir())


def test_install_refuses_files_the_runtimes_cannot_load(tmp_path: Path):
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with ModelStore(tmp_path / "s") as store, pytest.raises(ModelError, match="not a model"):
        store.install("digits", 1, other, {}, sha(other))


def test_activation_refuses_a_model_altered_on_disk(tmp_path: Path):
    with ModelStore(tmp_path) as store:
        install(store, 1, FP32)
        store.activate("digits", 1)
        staged = install(store, 2, INT8_TFLITE)
        staged.path.chmod(0o644)
        staged.path.write_bytes(staged.path.read_bytes()[:-1] + b"\0")
        with pytest.raises(UpdateError, match="altered on disk"):
            store.activate("digits", 2)
        assert store.active("digits").version == 1  # type: ignore[union-attr]


def test_rejected_version_is_never_reinstalled_and_active_cannot_be_rejected(tmp_path: Path):
    with ModelStore(tmp_path) as store:
        install(store, 1, FP32)
        store.activate("digits", 1)
        install(store, 2, INT8)
        store.reject("digits", 2, "shadow check: 30% disagreement")
        assert store.staged("digits") is None
        assert store.rejected("digits") == {2: "shadow check: 30% disagreement"}
        with pytest.raises(UpdateError, match="never reinstalled"):
            install(store, 2, INT8)
        with pytest.raises(UpdateError, match="roll back before"):
            store.reject("digits", 1, "bad")
        assert store.newest_version("digits") == 2


def test_gc_keeps_slots_and_the_newest_and_deletes_loose_blobs(tmp_path: Path):
    with ModelStore(tmp_path) as store:
        # v1 and v4 share one blob: collecting v1 must not delete v4's file
        for version, source in enumerate((FP32, INT8, INT8_TFLITE, FP32), start=1):
            copy = tmp_path / f"v{version}{source.suffix}"
            shutil.copy(source, copy)
            install(store, version, copy)
            store.activate("digits", version)
        (tmp_path / "blobs" / ("0" * 64 + ".onnx")).write_bytes(b"orphan")
        deleted = store.gc(keep=2)
        assert {m.version for m in store.list()} == {3, 4}
        assert any(p.name.startswith("0" * 64) for p in deleted)
        for model in store.list():
            store.verify(model)


def test_one_process_owns_the_store(tmp_path: Path):
    import subprocess
    import sys

    with ModelStore(tmp_path):
        code = (
            "import sys; from pathlib import Path\n"
            "from edge_agent.delivery.store import ModelStore\n"
            "try:\n ModelStore(Path(sys.argv[1]))\nexcept Exception as e: print(e)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
        ).stdout
        assert "in use by another process" in out


def test_readers_in_other_threads_see_consistent_slots(tmp_path: Path):
    with ModelStore(tmp_path) as store:
        install(store, 1, FP32)
        install(store, 2, INT8)
        store.activate("digits", 1)
        stop = threading.Event()
        seen: list[tuple[int, int | None]] = []

        def read() -> None:
            while not stop.is_set():
                active, previous = store.active("digits"), store.previous("digits")
                assert active is not None
                seen.append((active.version, previous.version if previous else None))

        reader = threading.Thread(target=read)
        reader.start()
        for _ in range(50):
            store.activate("digits", 2)
            store.activate("digits", 1)
        stop.set()
        reader.join()
        assert seen and all(a in (1, 2) for a, _ in seen)


def test_a_version_installs_with_its_package_parts_pinned_and_kept_by_gc(tmp_path: Path):
    profile = tmp_path / "profile.json"
    profile.write_text('{"format_version": 1}')
    with ModelStore(tmp_path / "store") as store:
        staged = store.install(
            "digits", 1, FP32, {"version": "1.1.0"}, sha(FP32), {"profile": (profile, sha(profile))}
        )
        assert staged.profile is not None and staged.profile.read_bytes() == profile.read_bytes()
        store.activate("digits", 1)
        assert store.gc() == []  # the profile blob is in use
        assert store.active("digits").profile == staged.profile  # type: ignore[union-attr]
        staged.profile.chmod(0o644)
        staged.profile.write_text('{"format_version": 2}')  # altered on disk
        with pytest.raises(UpdateError, match="profile of digits v1 is missing or altered"):
            store.verify(staged)


def test_a_part_that_does_not_hash_as_signed_installs_nothing(tmp_path: Path):
    profile = tmp_path / "profile.json"
    profile.write_text("{}")
    with ModelStore(tmp_path / "store") as store:
        with pytest.raises(UpdateError, match="tampered or corrupted"):
            store.install(
                "digits", 1, FP32, {"version": "1.1.0"}, sha(FP32), {"profile": (profile, "0" * 64)}
            )
        assert store.get("digits", 1) is None
