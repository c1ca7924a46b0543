"""The store-and-forward outbox: an on-disk SQLite (WAL) queue in front of MQTT.

paho-mqtt keeps its QoS 1 queue in memory only, so the outbox, not paho, is the record: every
report is committed here first (:meth:`Outbox.enqueue` returns only after the commit), and a
record leaves the outbox only when the broker has acknowledged it (PUBACK ->
:meth:`Outbox.ack`). Delivery is therefore *at least once*; every record carries an id
(``<outbox instance>-<sequence>``) that the monitor dedupes on.

Order: strict priority between classes (:class:`Priority`: status/rollout > alarms > drift >
telemetry > samples), FIFO within a class (the sequence is an AUTOINCREMENT rowid, never
reused). A fresh high-priority record is served before any backlog of a lower class, so a long
drain after an outage never starves live status or alarms.

Bound: the sum of payload bytes is kept under ``max_bytes``; when an enqueue goes over, the
oldest records of the lowest priority present are dropped (possibly the new record itself,
when it is the lowest and oldest there is) and the drops are counted per class in the file, so
they survive restarts and are reported.

Durability (SQLite ``synchronous`` with ``journal_mode=WAL``):

* ``full`` (default): the WAL is fsynced at every commit, so a record acknowledged as queued
  survives kill -9 *and* power loss. Costs one fsync per enqueue (batch with
  :meth:`Outbox.enqueue_many` where many records are produced at once).
* ``normal``: the WAL is fsynced only at checkpoints. A committed record survives kill -9 (it
  is in the OS page cache), but power loss may roll back the last commits; the file itself is
  never corrupted. Several times faster on SD cards.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from edge_agent._fs import make_dirs
from edge_agent.errors import TransportError
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.telemetry import Envelope

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    channel TEXT NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_order ON records (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (priority INTEGER PRIMARY KEY, count INTEGER NOT NULL,
                                    bytes INTEGER NOT NULL);
"""


class Priority(IntEnum):
    """Delivery classes, most urgent first (lower value = served first, dropped last)."""

    STATUS = 0
    """Status and rollout state transitions."""
    ALARM = 1
    DRIFT = 2
    TELEMETRY = 3
    SAMPLES = 4


@dataclass(frozen=True)
class Record:
    """One queued record."""

    seq: int
    record_id: str
    priority: Priority
    channel: DeviceChannel
    created: float
    payload: bytes

    def envelope(self) -> bytes:
        """The MQTT payload: the wire's ``Envelope`` around the stored document."""
        return Envelope.frame(
            self.record_id, self.seq, self.priority.name.lower(), self.created, self.payload
        )


@dataclass(frozen=True)
class EnqueueResult:
    """What happened to an enqueued record."""

    record_id: str
    kept: bool
    """False when the byte bound dropped the record itself (it was the lowest and oldest)."""
    dropped: int
    """Records dropped (this one included, if it was) to stay within the bound."""


class Outbox:
    """The SQLite outbox. Thread-safe: one connection behind a lock."""

    def __init__(
        self, path: Path | str, max_bytes: int = 64 * 1024 * 1024, synchronous: str = "full"
    ) -> None:
        """Open (or create) the outbox file; TransportError naming the file if unusable."""
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._wakeups: list[threading.Event] = []
        try:
            make_dirs(self.path.parent)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except (OSError, sqlite3.Error) as exc:
            raise TransportError(
                f"cannot open the outbox {self.path}: {exc}; check that the "
                "directory is writable (store_dir)"
            ) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
            if row is None:
                instance = uuid.uuid4().hex[:12]
                self._db.execute("INSERT INTO meta VALUES ('instance', ?)", (instance,))
            else:
                instance = str(row[0])
            self.instance = instance
            total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM records").fetchone()
            self._bytes = int(total[0])
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise TransportError(
                f"the outbox {self.path} is not a usable SQLite database "
                f"({exc}); move it aside and restart (queued records in it "
                "are lost)"
            ) from exc

    def close(self) -> None:
        """Close the database (checkpoints the WAL)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        """Context manager: closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    def add_wakeup(self, event: threading.Event) -> None:
        """Set ``event`` after every enqueue (the publisher waits on it)."""
        self._wakeups.append(event)

    def record_id(self, seq: int) -> str:
        """The id the monitor dedupes on."""
        return f"{self.instance}-{seq}"

    @staticmethod
    def _encode(payload: Mapping[str, Any] | bytes) -> bytes:
        if isinstance(payload, bytes):
            return payload
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()

    def enqueue(
        self, channel: DeviceChannel, priority: Priority, payload: Mapping[str, Any] | bytes
    ) -> EnqueueResult:
        """Commit one record (JSON object, or bytes that are already JSON); durable on return.

        Raises TransportError when the record cannot be stored (disk full, I/O error).
        """
        return self.enqueue_many([(channel, priority, payload)])[0]

    def enqueue_many(
        self, items: Sequence[tuple[DeviceChannel, Priority, Mapping[str, Any] | bytes]]
    ) -> list[EnqueueResult]:
        """Commit several records in one transaction (one fsync)."""
        rows = [
            (int(p), DeviceChannel(c).value, time.time(), self._encode(data))
            for c, p, data in items
        ]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = []
                for priority, channel, created, blob in rows:
                    cursor = self._db.execute(
                        "INSERT INTO records (priority, channel, created, size, payload) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (priority, channel, created, len(blob), blob),
                    )
                    seqs.append(int(cursor.lastrowid or 0))
                added = sum(len(r[3]) for r in rows)
                dropped_seqs, freed = self._enforce_bound(self._bytes + added)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise TransportError(
                    f"cannot store a record in the outbox {self.path}: {exc}; "
                    "free disk space or lower telemetry.outbox.max_bytes"
                ) from exc
            self._bytes += added - freed
        for event in self._wakeups:
            event.set()
        return [
            EnqueueResult(self.record_id(s), s not in dropped_seqs, len(dropped_seqs)) for s in seqs
        ]

    def _enforce_bound(self, total: int) -> tuple[set[int], int]:
        """Inside a transaction: drop lowest-priority-oldest records until under the bound."""
        dropped: set[int] = set()
        freed = 0
        while total - freed > self.max_bytes:
            victims = self._db.execute(
                "SELECT seq, priority, size FROM records WHERE priority = "
                "(SELECT MAX(priority) FROM records) ORDER BY seq LIMIT 256"
            ).fetchall()
            if not victims:
                break
            chosen = []
            for seq, priority, size in victims:
                if total - freed <= self.max_bytes:
                    break
                chosen.append((seq, priority, size))
                freed += size
            self._db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s, _, _ in chosen])
            for _, priority, size in chosen:
                self._db.execute(
                    "INSERT INTO dropped VALUES (?, 1, ?) ON CONFLICT(priority) DO UPDATE SET "
                    "count = count + 1, bytes = bytes + excluded.bytes",
                    (priority, size),
                )
            dropped.update(s for s, _, _ in chosen)
        return dropped, freed

    def peek(self, limit: int, skip: Iterable[int] = ()) -> list[Record]:
        """Up to ``limit`` records in delivery order, leaving out the sequences in ``skip``."""
        skipped = set(skip)
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, priority, channel, created, payload FROM records "
                "ORDER BY priority, seq LIMIT ?",
                (limit + len(skipped),),
            ).fetchall()
        out = [
            Record(
                seq, self.record_id(seq), Priority(p), DeviceChannel(ch), created, bytes(payload)
            )
            for seq, p, ch, created, payload in rows
            if seq not in skipped
        ]
        return out[:limit]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete delivered records (one transaction); returns how many were still there.

        Committed without fsync (``synchronous=NORMAL`` for this transaction only): losing a
        deletion to power loss only means the record is sent again, and the monitor dedupes.
        """
        batch = [(s,) for s in seqs]
        if not batch:
            return 0
        with self._lock:
            try:
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                freed = 0
                removed = 0
                for (seq,) in batch:
                    row = self._db.execute(
                        "DELETE FROM records WHERE seq = ? RETURNING size", (seq,)
                    ).fetchone()
                    if row is not None:
                        freed += int(row[0])
                        removed += 1
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise TransportError(f"cannot update the outbox {self.path}: {exc}") from exc
            finally:
                self._db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            self._bytes -= freed
        return removed

    def __len__(self) -> int:
        """Records queued."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    @property
    def queued_bytes(self) -> int:
        """Payload bytes queued."""
        return self._bytes

    def stats(self) -> dict[str, Any]:
        """Queued and dropped records / bytes per class (JSON-able, for telemetry)."""
        with self._lock:
            queued = self._db.execute(
                "SELECT priority, COUNT(*), SUM(size) FROM records GROUP BY priority"
            ).fetchall()
            dropped = self._db.execute("SELECT priority, count, bytes FROM dropped").fetchall()
        return {
            "queued": {Priority(p).name.lower(): {"records": n, "bytes": b} for p, n, b in queued},
            "dropped": {
                Priority(p).name.lower(): {"records": n, "bytes": b} for p, n, b in dropped
            },
            "queued_bytes": self._bytes,
            "max_bytes": self.max_bytes,
        }
