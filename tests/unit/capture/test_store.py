import sqlite3

import numpy as np
import pytest

from edge_agent.capture.store import Sample, SampleStore
from edge_agent.errors import SampleStoreError


def sample(i: int, created: float = 0.0, size: int = 100) -> Sample:
    rng = np.random.default_rng(i)  # random data: compresses poorly, sizes are predictable
    return Sample(
        model="m",
        version="1",
        delegate="cpu",
        latency_s=0.001,
        strategy="random",
        inputs={"x": rng.random(size).astype(np.float32)},
        outputs={"p": np.array([[0.1, 0.9]], np.float32)},
        created=created,
        prediction=1,
        confidence=0.9,
    )


def test_round_trip(tmp_path):
    with SampleStore(tmp_path) as store:
        sample_id = store.add(sample(1))
        inputs, outputs = store.load(sample_id)
        assert np.array_equal(inputs["x"], sample(1).inputs["x"])
        assert outputs["p"].tolist() == [[pytest.approx(0.1), pytest.approx(0.9)]]
        info = store.get(sample_id)
        assert (info.model, info.prediction, info.uploaded) == ("m", 1, False)
        assert store.stats()["samples"] == 1


def test_byte_cap_drops_the_oldest_and_counts_it_across_restarts(tmp_path):
    with SampleStore(tmp_path, max_bytes=10**9) as store:
        one = store.add(sample(0, size=2000))
        size = store.get(one).size
    with SampleStore(tmp_path, max_bytes=int(size * 3.5)) as store:
        ids = [one] + [store.add(sample(i, size=2000)) for i in range(1, 6)]
        kept = [s.id for s in store.list()]
        assert kept == ids[-3:]
        assert store.stats()["dropped"] == 3 and store.stats()["dropped_not_uploaded"] == 3
        assert not (store.payload_dir / f"{ids[0]}.npz").exists()
    with SampleStore(tmp_path, max_bytes=10**9) as store:
        assert store.stats()["dropped"] == 3
        assert store.stats()["bytes"] <= int(size * 3.5)


def test_age_cap(tmp_path):
    now = [1000.0]
    with SampleStore(tmp_path, max_age_s=100, clock=lambda: now[0]) as store:
        old = store.add(sample(1, created=850.0))
        new = store.add(sample(2, created=990.0))
        assert [s.id for s in store.list()] == [new]
        now[0] = 2000.0
        assert store.enforce_limits() == 1
        assert store.stats()["samples"] == 0 and store.get(old) is None


def test_recovery_after_a_crash_between_file_and_row(tmp_path):
    with SampleStore(tmp_path) as store:
        kept = store.add(sample(1))
        gone = store.add(sample(2))
    (tmp_path / "payloads" / "deadbeef.npz").write_bytes(b"orphan")  # file, no row
    (tmp_path / "payloads" / "x.npz.tmp").write_bytes(b"half")
    (tmp_path / "payloads" / f"{gone}.npz").unlink()  # row, no file
    with SampleStore(tmp_path) as store:
        assert store.recovered == {"temp_files": 1, "orphan_payloads": 1, "lost_rows": 1}
        assert [s.id for s in store.list()] == [kept]
        assert store.stats()["lost"] == 1


def test_upload_progress_persists(tmp_path):
    with SampleStore(tmp_path) as store:
        a, b = store.add(sample(1)), store.add(sample(2))
        store.mark_progress(a, 10)
        store.mark_uploaded(b)
    with SampleStore(tmp_path) as store:
        pending = store.pending_upload()
        assert [(s.id, s.uploaded_bytes) for s in pending] == [(a, 10)]
        assert store.stats()["uploaded"] == 1


def test_a_corrupt_index_is_a_clear_error(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SampleStoreError, match="move it away"):
        SampleStore(tmp_path)
    assert sqlite3.sqlite_version
