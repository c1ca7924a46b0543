"""The on-disk sample store: a SQLite (WAL) index and one compressed ``.npz`` payload per sample.

Layout of the store folder::

    index.sqlite            samples(id, seq, created, model, version, delegate, latency_s,
                            strategy, prediction, confidence, size, sha256, upload progress)
    payloads/<id>.npz       np.savez_compressed: ``input:<name>`` and ``output:<name>`` arrays

Crash safety (kill -9 at any moment loses at most the sample being written, and never leaves
a half-trusted one): a payload is written to a ``.tmp`` file beside ``<id>.npz``, fsynced and
renamed into place (:func:`edge_agent._fs.write_atomically`) *before* its index row is
committed; a drop deletes the row (committed) *before* the file. At open,
:meth:`SampleStore.recover` removes ``.tmp`` leftovers and payloads without a row, and
rows whose payload vanished. SQLite runs with ``journal_mode=WAL`` and ``synchronous=NORMAL``:
a committed row survives kill -9; power loss may lose the last rows, not the file's integrity.

Bounds: the payload bytes are kept under ``max_bytes`` and samples older than ``max_age_s`` are
dropped, oldest first; drops are counted in the index (so the count survives restarts) and
reported, with those never uploaded counted apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent._fs import make_dirs, write_atomically
from edge_agent.errors import SampleStoreError

INDEX = "index.sqlite"
PAYLOADS = "payloads"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    delegate TEXT NOT NULL,
    latency_s REAL NOT NULL,
    strategy TEXT NOT NULL,
    prediction INTEGER,
    confidence REAL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0,
    uploaded INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS samples_upload ON samples (uploaded, seq);
CREATE INDEX IF NOT EXISTS samples_created ON samples (created);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLUMNS = (
    "seq, id, created, model, version, delegate, latency_s, strategy, prediction, "
    "confidence, size, sha256, uploaded_bytes, uploaded, meta"
)


@dataclass
class Sample:
    """One captured inference, as the capturer hands it to the store."""

    model: str
    version: str
    delegate: str
    latency_s: float
    strategy: str
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    created: float = field(default_factory=time.time)
    prediction: int | None = None
    confidence: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleInfo:
    """One index row (no payload)."""

    seq: int
    id: str
    created: float
    model: str
    version: str
    delegate: str
    latency_s: float
    strategy: str
    prediction: int | None
    confidence: float | None
    size: int
    sha256: str
    uploaded_bytes: int
    uploaded: bool
    meta: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def encode_payload(inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bytes:
    """The compressed ``.npz`` bytes of a sample."""
    arrays = {f"input:{k}": np.asarray(v) for k, v in inputs.items()}
    arrays.update({f"output:{k}": np.asarray(v) for k, v in outputs.items()})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_payload(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, outputs) from :func:`encode_payload` bytes; ValueError when malformed."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a sample payload: {exc}") from None
    inputs = {k.removeprefix("input:"): v for k, v in arrays.items() if k.startswith("input:")}
    outputs = {k.removeprefix("output:"): v for k, v in arrays.items() if k.startswith("output:")}
    return inputs, outputs


class SampleStore:
    """Samples on disk, bounded by bytes and age. Thread-safe (one connection, one lock)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.time,
        fsync: bool = True,
    ) -> None:
        """Open (or create) the store and recover from any crash; SampleStoreError if unusable."""
        self.directory = Path(directory)
        self.payload_dir = self.directory / PAYLOADS
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.clock = clock
        self.fsync = fsync
        self._lock = threading.Lock()
        try:
            make_dirs(self.payload_dir)
            self._db = sqlite3.connect(
                self.directory / INDEX, isolation_level=None, check_same_thread=False, timeout=30
            )
        except (OSError, sqlite3.Error) as exc:
            raise SampleStoreError(
                f"cannot open the sample store in {self.directory}: {exc}; check "
                "that the folder is writable (capture.dir / store_dir)"
            ) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self.recovered = self.recover()
            self._bytes = int(
                self._db.execute("SELECT COALESCE(SUM(size), 0) FROM samples").fetchone()[0]
            )
            # a kill between an insert and its cap enforcement leaves the store over the cap
            self.enforce_limits()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise SampleStoreError(
                f"{self.directory / INDEX}: not a usable sample index ({exc}); "
                "move it away to start a fresh store"
            ) from None

    # -- crash recovery --------------------------------------------------------------------

    def recover(self) -> dict[str, int]:
        """Remove temp files, payloads without a row and rows without a payload."""
        with self._lock:
            temp = orphans = lost = 0
            ids = {row[0] for row in self._db.execute("SELECT id FROM samples")}
            on_disk = set()
            for path in self.payload_dir.iterdir():
                if path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)
                    temp += 1
                elif path.suffix == ".npz":
                    if path.stem in ids:
                        on_disk.add(path.stem)
                    else:
                        path.unlink(missing_ok=True)
                        orphans += 1
            missing = ids - on_disk
            if missing:
                self._db.executemany("DELETE FROM samples WHERE id=?", [(i,) for i in missing])
                lost = len(missing)
                self._count("lost", lost)
            return {"temp_files": temp, "orphan_payloads": orphans, "lost_rows": lost}

    # -- writing ---------------------------------------------------------------------------

    def add(self, sample: Sample) -> str:
        """Store ``sample``; returns its id.

        SampleStoreError on a full disk (nothing half-written).
        """
        sample_id = uuid.uuid4().hex
        data = encode_payload(sample.inputs, sample.outputs)
        final = self.payload_dir / f"{sample_id}.npz"
        try:
            # the umask decides who may read captured inputs, as for any file the agent writes
            write_atomically(final, data, mode=None, durable=self.fsync)
        except OSError as exc:
            raise SampleStoreError(f"cannot write a sample to {self.payload_dir}: {exc}") from None
        row = (
            sample_id,
            sample.created,
            sample.model,
            sample.version,
            sample.delegate,
            sample.latency_s,
            sample.strategy,
            sample.prediction,
            sample.confidence,
            len(data),
            hashlib.sha256(data).hexdigest(),
            json.dumps(sample.meta),
        )
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO samples (id, created, model, version, delegate, latency_s, "
                    "strategy, prediction, confidence, size, sha256, meta) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
                self._bytes += len(data)
        except sqlite3.Error as exc:
            final.unlink(missing_ok=True)
            raise SampleStoreError(f"cannot index a sample in {self.directory}: {exc}") from None
        self.enforce_limits()
        return sample_id

    def enforce_limits(self) -> int:
        """Drop the oldest samples beyond ``max_bytes`` and older than ``max_age_s``."""
        doomed: list[tuple[str, int, int]] = []
        with self._lock:
            if self.max_age_s is not None:
                cutoff = self.clock() - self.max_age_s
                doomed += self._db.execute(
                    "SELECT id, size, uploaded FROM samples WHERE created < ? ORDER BY seq",
                    (cutoff,),
                ).fetchall()
            over = self._bytes - sum(size for _, size, _ in doomed) - self.max_bytes
            if over > 0:
                skip = {i for i, _, _ in doomed}
                for sample_id, size, uploaded in self._db.execute(
                    "SELECT id, size, uploaded FROM samples ORDER BY seq"
                ):
                    if over <= 0:
                        break
                    if sample_id in skip:
                        continue
                    doomed.append((sample_id, size, uploaded))
                    over -= size
            if not doomed:
                return 0
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM samples WHERE id=?", [(i,) for i, _, _ in doomed])
            self._count("dropped", len(doomed))
            self._count("dropped_not_uploaded", sum(1 for *_, u in doomed if not u))
            self._db.execute("COMMIT")
            self._bytes -= sum(size for _, size, _ in doomed)
        for sample_id, _, _ in doomed:
            (self.payload_dir / f"{sample_id}.npz").unlink(missing_ok=True)
        return len(doomed)

    def _count(self, key: str, amount: int) -> None:
        """Add to a persistent counter (inside the caller's transaction, if any)."""
        if amount:
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value = value + excluded.value",
                (key, amount),
            )

    def delete(self, sample_id: str) -> bool:
        """Remove one sample (row first, then the file); False if it was not there."""
        with self._lock:
            row = self._db.execute("SELECT size FROM samples WHERE id=?", (sample_id,)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM samples WHERE id=?", (sample_id,))
            self._bytes -= int(row[0])
        (self.payload_dir / f"{sample_id}.npz").unlink(missing_ok=True)
        return True

    # -- upload progress -------------------------------------------------------------------

    def pending_upload(self, limit: int = 16) -> list[SampleInfo]:
        """Samples not fully uploaded yet, oldest first."""
        return self._select("WHERE uploaded=0 ORDER BY seq LIMIT ?", (limit,))

    def mark_progress(self, sample_id: str, uploaded_bytes: int) -> None:
        """The broker acknowledged this sample's payload up to ``uploaded_bytes``."""
        with self._lock:
            self._db.execute(
                "UPDATE samples SET uploaded_bytes=? WHERE id=?", (uploaded_bytes, sample_id)
            )

    def mark_uploaded(self, sample_id: str) -> None:
        """The whole sample was acknowledged; it is never sent again."""
        with self._lock:
            self._db.execute(
                "UPDATE samples SET uploaded=1, uploaded_bytes=size WHERE id=?", (sample_id,)
            )
            self._count("uploaded", 1)

    # -- reading ---------------------------------------------------------------------------

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[SampleInfo]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM samples {where}", params).fetchall()
        return [
            SampleInfo(
                seq=r[0],
                id=r[1],
                created=r[2],
                model=r[3],
                version=r[4],
                delegate=r[5],
                latency_s=r[6],
                strategy=r[7],
                prediction=r[8],
                confidence=r[9],
                size=r[10],
                sha256=r[11],
                uploaded_bytes=r[12],
                uploaded=bool(r[13]),
                meta=json.loads(r[14] or "{}"),
            )
            for r in rows
        ]

    def list(
        self,
        model: str | None = None,
        strategy: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[SampleInfo]:
        """Index rows matching the filters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("model", model), ("strategy", strategy)):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if since is not None:
            clauses.append("created>=?")
            params.append(since)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        where += f" ORDER BY seq {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            where += " LIMIT ?"
            params.append(limit)
        return self._select(where, tuple(params))

    def get(self, sample_id: str) -> SampleInfo | None:
        """One index row by id."""
        found = self._select("WHERE id=?", (sample_id,))
        return found[0] if found else None

    def payload_bytes(self, sample_id: str) -> bytes:
        """The stored ``.npz`` bytes; SampleStoreError if the sample or its file is gone."""
        try:
            return (self.payload_dir / f"{sample_id}.npz").read_bytes()
        except OSError as exc:
            raise SampleStoreError(f"sample {sample_id}: payload unreadable ({exc})") from None

    def load(self, sample_id: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, outputs) of a sample."""
        try:
            return decode_payload(self.payload_bytes(sample_id))
        except ValueError as exc:
            raise SampleStoreError(f"sample {sample_id}: {exc}") from None

    def stats(self) -> dict[str, Any]:
        """Count, bytes, pending uploads and the persistent counters."""
        with self._lock:
            count, pending = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(uploaded=0), 0) FROM samples"
            ).fetchone()
            counters = dict(self._db.execute("SELECT key, value FROM counters").fetchall())
        return {
            "samples": int(count),
            "bytes": self._bytes,
            "pending_upload": int(pending),
            "max_bytes": self.max_bytes,
            "dropped": counters.get("dropped", 0),
            "dropped_not_uploaded": counters.get("dropped_not_uploaded", 0),
            "uploaded": counters.get("uploaded", 0),
            "lost": counters.get("lost", 0),
        }

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
