from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_agent.errors import TransportError
from edge_agent.telemetry.outbox import Outbox, Priority
from edge_agent.transport.topics import DeviceChannel

T, D, S = DeviceChannel.TELEMETRY, DeviceChannel.DRIFT, DeviceChannel.STATUS


@pytest.fixture
def outbox(tmp_path: Path):
    with Outbox(tmp_path / "outbox.db", max_bytes=10_000) as box:
        yield box


def test_delivery_order_is_priority_then_fifo(outbox: Outbox) -> None:
    outbox.enqueue(T, Priority.TELEMETRY, {"n": 1})
    outbox.enqueue(D, Priority.DRIFT, {"n": 2})
    outbox.enqueue(T, Priority.SAMPLES, {"n": 3})
    outbox.enqueue(S, Priority.STATUS, {"n": 4})
    outbox.enqueue(T, Priority.TELEMETRY, {"n": 5})
    outbox.enqueue(D, Priority.ALARM, {"n": 6})
    order = [json.loads(r.payload)["n"] for r in outbox.peek(10)]
    assert order == [4, 6, 2, 1, 5, 3]


def test_envelope_carries_id_and_data(outbox: Outbox) -> None:
    result = outbox.enqueue(T, Priority.TELEMETRY, {"cpu": 12.5})
    record = outbox.peek(1)[0]
    envelope = json.loads(record.envelope())
    assert envelope["id"] == result.record_id == record.record_id
    assert envelope["data"] == {"cpu": 12.5} and envelope["priority"] == "telemetry"


def test_ack_removes_and_peek_skips_in_flight(outbox: Outbox) -> None:
    for i in range(5):
        outbox.enqueue(T, Priority.TELEMETRY, {"i": i})
    first = outbox.peek(2)
    assert [json.loads(r.payload)["i"] for r in outbox.peek(2, skip=[first[0].seq])] == [1, 2]
    assert outbox.ack([r.seq for r in first]) == 2
    assert outbox.ack([first[0].seq]) == 0  # a duplicate PUBACK is harmless
    assert len(outbox) == 3


def test_bound_drops_lowest_priority_oldest_first_and_counts(outbox: Outbox) -> None:
    blob = {"pad": "x" * 990}  # about 1000 bytes each
    status = outbox.enqueue(S, Priority.STATUS, blob)
    samples = [outbox.enqueue(T, Priority.SAMPLES, blob) for _ in range(4)]
    telemetry = [outbox.enqueue(T, Priority.TELEMETRY, blob) for _ in range(5)]
    assert len(outbox) == 10
    more = outbox.enqueue(T, Priority.TELEMETRY, blob)  # over 10 kB: the oldest sample goes
    assert more.kept and more.dropped == 1
    ids = {r.record_id for r in outbox.peek(100)}
    assert samples[0].record_id not in ids and samples[1].record_id in ids
    assert status.record_id in ids and all(t.record_id in ids for t in telemetry)
    assert outbox.queued_bytes <= outbox.max_bytes
    stats = outbox.stats()
    assert stats["dropped"] == {
        "samples": {"records": 1, "bytes": len(json.dumps(blob, separators=(",", ":")))}
    }


def test_new_lowest_priority_record_is_itself_dropped_when_nothing_lower(outbox: Outbox) -> None:
    blob = {"pad": "x" * 990}
    for _ in range(10):
        outbox.enqueue(S, Priority.STATUS, blob)
    result = outbox.enqueue(T, Priority.SAMPLES, blob)
    assert not result.kept and len(outbox) == 10


def test_drop_counts_and_ids_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, max_bytes=64 * 1024) as box:
        first = box.enqueue(T, Priority.TELEMETRY, {"a": 1})
        box.ack([box.peek(1)[0].seq])
        box.enqueue_many([(T, Priority.SAMPLES, {"p": "x" * 1000})] * 70)
        dropped = box.stats()["dropped"]["samples"]["records"]
    assert dropped > 0
    with Outbox(path, max_bytes=64 * 1024) as box:
        assert box.stats()["dropped"]["samples"]["records"] == dropped
        again = box.enqueue(T, Priority.TELEMETRY, {"a": 2})
        assert again.record_id != first.record_id  # AUTOINCREMENT never reuses a sequence
        assert again.record_id.split("-")[0] == first.record_id.split("-")[0]
        assert box.queued_bytes == sum(len(r.payload) for r in box.peek(1000))


def test_garbage_database_file_is_a_clear_transport_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TransportError, match="not a usable SQLite database"):
        Outbox(path)


def test_unwritable_location_is_a_clear_transport_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TransportError, match="cannot open the outbox"):
        Outbox(blocker / "sub" / "o.db")


def test_full_disk_is_a_transport_error_and_loses_nothing_queued(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        box.enqueue(T, Priority.TELEMETRY, {"keep": 1})
        # simulate a full disk: SQLite refuses to grow the file past its current page count
        pages = box._db.execute("PRAGMA page_count").fetchone()[0]
        box._db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(TransportError, match="free disk space"):
            box.enqueue(T, Priority.TELEMETRY, {"big": "x" * 100_000})
        assert [json.loads(r.payload) for r in box.peek(10)] == [{"keep": 1}]


def test_nan_payload_is_rejected_before_storing(outbox: Outbox) -> None:
    with pytest.raises(ValueError):
        outbox.enqueue(T, Priority.TELEMETRY, {"x": float("nan")})
    assert len(outbox) == 0


def test_wal_mode_and_synchronous_level(tmp_path: Path) -> None:
    for level, expected in (("full", 2), ("normal", 1)):
        with Outbox(tmp_path / f"{level}.db", synchronous=level) as box:
            assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert box._db.execute("PRAGMA synchronous").fetchone()[0] == expected
    with pytest.raises(ValueError, match="synchronous"):
        Outbox(tmp_path / "x.db", synchronous="off")
    sqlite3.connect(tmp_path / "full.db").close()
