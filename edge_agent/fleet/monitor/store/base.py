"""The monitor's store: one interface, one SQL text, two backends (SQLite and PostgreSQL).

Writes come from one thread (ingest) in batches: :meth:`Store.write_batch` puts every row of a
batch in one transaction (``ON CONFLICT DO NOTHING`` on the record key dedupes at-least-once
deliveries, also between several monitor instances sharing one database) and says how many
records were new. Reads (dashboard, queries, alerts, metrics) use one connection per thread.
The backends differ only in how they connect, their placeholder and a few SQL tokens.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.monitor.payloads import (
    DriftRow,
    EventRow,
    LoadRow,
    Row,
    SampleRow,
    StatusRow,
    TelemetryRow,
)
from edge_agent.fleet.monitor.quarantine import DeadLetter, admit_models
from edge_agent.fleet.monitor.store import migrations

log = logging.getLogger(__name__)

RETAINED_TABLES = ("telemetry", "model_load", "drift", "events", "samples", "dead_letters")
MAX_MODELS_PER_DEVICE = 64
"""Distinct model names one device may ever have stored (as many as a status may list)."""
DEAD_LETTERS_KEPT = 1000
"""Newest quarantined messages kept in ``dead_letters``."""
MAX_DEVICES = 10_000
"""Device ids the ``devices`` table may hold; records from further ids are refused, so a client
inventing ids on an anonymous broker cannot grow the table or open an alert per id."""


class StoreError(EdgeAgentError):
    """The monitor's database cannot be opened, migrated or written."""


@dataclass
class WriteResult:
    """What one batch did."""

    new: int = 0
    """Records stored for the first time."""
    duplicates: int = 0
    """Records already stored (at-least-once redeliveries)."""
    by_table: dict[str, int] = field(default_factory=dict)
    capped: int = 0
    """Rows not stored because they name a model beyond the device's cap."""
    refused_devices: set[str] = field(default_factory=set)
    """Device ids not stored: new to the database while it holds ``max_devices`` already."""


_INSERTS: dict[type, tuple[str, str, tuple[str, ...]]] = {
    TelemetryRow: (
        "telemetry",
        "rkey",
        (
            "device_id",
            "time",
            "state",
            "battery_pct",
            "max_temp_c",
            "power_w",
            "cpu_pct",
            "memory_pct",
            "energy_j",
            "power_mode",
        ),
    ),
    LoadRow: (
        "model_load",
        "rkey",
        (
            "device_id",
            "time",
            "model",
            "version",
            "delegate",
            "count",
            "errors",
            "throughput",
            "p50",
            "p95",
            "p99",
            "sketch",
        ),
    ),
    EventRow: (
        "events",
        "rkey",
        ("device_id", "time", "kind", "model", "version", "state", "reason", "detail"),
    ),
    SampleRow: (
        "samples",
        "rkey",
        (
            "device_id",
            "time",
            "model",
            "version",
            "delegate",
            "latency_ms",
            "strategy",
            "prediction",
            "confidence",
            "size",
        ),
    ),
}
_DRIFT_COLUMNS = (
    "rkey",
    "device_id",
    "time",
    "model",
    "window_index",
    "samples",
    "input_severity",
    "prediction_severity",
    "quality_severity",
    "input_alarm",
    "prediction_alarm",
    "quality_alarm",
    "features",
    "profile",
)
PRIMARY = ("telemetry", "drift", "events", "samples")
"""Tables with one row per received record (model_load rows belong to a telemetry record)."""


def _drift_values(row: DriftRow) -> tuple[Any, ...]:
    return (
        row.key,
        row.device_id,
        row.time,
        row.model,
        row.window,
        row.samples,
        row.severity.get("input"),
        row.severity.get("prediction"),
        row.severity.get("quality"),
        row.alarm.get("input"),
        row.alarm.get("prediction"),
        row.alarm.get("quality"),
        row.features,
        row.profile,
    )


def _model_names(row: Row) -> set[str]:
    """The model names a row would store."""
    if isinstance(row, StatusRow):
        return {m[0] for m in row.models}
    model = getattr(row, "model", None)
    return {model} if model else set()


class Store(ABC):
    """A monitor database. Subclasses connect; this class holds every statement."""

    dialect = "sqlite"
    greatest = "max"
    """The two-argument maximum: ``max`` in SQLite, ``GREATEST`` in PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._writer: Any = None
        self._write_lock = threading.Lock()
        self.max_models_per_device = MAX_MODELS_PER_DEVICE
        self._model_names: dict[str, set[str]] = {}
        """device -> its admitted model names (the writer's cache of ``device_model_names``)."""
        self.max_devices: int | None = MAX_DEVICES
        """Most device ids stored (None: no limit); see :meth:`_admit_devices`."""
        self._known_devices: set[str] = set()
        """Device ids known to be in ``devices`` (the writer's cache; bounded by the table)."""

    # -- connections (backend-specific) ----------------------------------------------------

    @abstractmethod
    def _connect(self, *, writer: bool) -> Any:
        """A new DB-API connection; StoreError naming the database when it fails."""

    @abstractmethod
    def _begin(self, conn: Any) -> None:
        """Start a write transaction."""

    def sql(self, text: str) -> str:
        """Adapt ``?`` placeholders to the backend's paramstyle."""
        return text

    def _is_broken(self, conn: Any) -> bool:
        """Whether ``conn`` lost its server for good (a new connection is needed)."""
        return False

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect the writer and apply pending migrations."""
        self._writer = self._connect(writer=True)
        self.migrate()

    def schema_version(self) -> int:
        """The newest applied migration (0 on an empty database)."""
        conn = self._writer
        cur = conn.cursor()
        try:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            conn.commit()
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            return int(cur.fetchone()[0])
        finally:
            cur.close()

    def migrate(self) -> list[int]:
        """Apply every pending migration, each in its own transaction; returns those applied."""
        with self._write_lock:
            applied = self.schema_version()
            if applied > migrations.latest():
                raise StoreError(
                    f"database {self.describe()} has schema version {applied}, newer than this "
                    f"monitor knows ({migrations.latest()}): upgrade edge-agent on this host"
                )
            done = []
            conn = self._writer
            for migration in migrations.pending(applied):
                cur = conn.cursor()
                try:
                    self._begin(conn)
                    for statement in migrations.render(migration, self.dialect):
                        cur.execute(statement)
                    cur.execute(
                        self.sql(
                            "INSERT INTO schema_migrations (version, description, applied) "
                            "VALUES (?, ?, ?)"
                        ),
                        (migration.version, migration.description, time.time()),
                    )
                    conn.commit()
                except Exception as exc:
                    conn.rollback()
                    raise StoreError(
                        f"migration {migration.version} ({migration.description}) failed on "
                        f"{self.describe()}: {exc}"
                    ) from exc
                finally:
                    cur.close()
                done.append(migration.version)
                log.info("monitor database migrated to version %d", migration.version)
            return done

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            try:
                conn.close()
            except Exception:  # closing is best effort
                log.debug("closing a reader failed", exc_info=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def describe(self) -> str:
        """The database, without a password."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.url

    # -- writes ----------------------------------------------------------------------------

    def write_batch(self, rows: Sequence[Row], received: float) -> WriteResult:
        """Store ``rows`` in one transaction; StoreError (nothing stored) on failure.

        Rows naming a model beyond the device's ``max_models_per_device`` are left out
        (counted in ``capped``): see :mod:`edge_agent.fleet.monitor.quarantine`.
        """
        result = WriteResult()
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreError("the monitor store is closed")
            cur = conn.cursor()
            admitted: dict[str, set[str]] = {}
            try:
                self._begin(conn)
                rows = self._admit_devices(cur, rows, result)
                rows = self._cap_models(cur, rows, admitted, result)
                statuses: dict[str, StatusRow] = {}
                grouped: dict[type, list[Row]] = {}
                seen_at: dict[str, float] = {}
                for row in rows:
                    if isinstance(row, StatusRow):
                        previous = statuses.get(row.device_id)
                        if previous is None or row.time >= previous.time:
                            statuses[row.device_id] = row
                    else:
                        grouped.setdefault(type(row), []).append(row)
                        seen_at[row.device_id] = received
                if statuses:
                    self._write_statuses(cur, list(statuses.values()), received)
                if seen_at:
                    self._touch_devices(cur, seen_at)
                for kind, items in grouped.items():
                    table, inserted = self._insert(cur, kind, items)
                    result.by_table[table] = result.by_table.get(table, 0) + inserted
                    if table in PRIMARY:
                        result.new += inserted
                        result.duplicates += len(items) - inserted
                conn.commit()
            except Exception as exc:
                try:
                    conn.rollback()
                except Exception:
                    log.debug("rollback failed", exc_info=True)
                raise StoreError(f"writing to {self.describe()} failed: {exc}") from exc
            finally:
                cur.close()
            for device, names in admitted.items():
                self._model_names[device] = names  # only once committed
            if len(self._known_devices) > 2 * (self.max_devices or 100_000):
                self._known_devices.clear()  # devices removed by an operator: start over
            self._known_devices.update(r.device_id for r in rows)
        return result

    def _admit_devices(self, cur: Any, rows: Sequence[Row], result: WriteResult) -> list[Row]:
        """``rows`` without those of device ids new to a database at ``max_devices``.

        Known ids (in ``devices``) are always admitted; new ids are admitted in sorted order
        while the table holds fewer than ``max_devices``; the rest go to
        ``result.refused_devices``. Checked inside the write transaction, so one instance never
        overshoots; several instances sharing a database may overshoot by one batch each.
        """
        wanted = {row.device_id for row in rows} - self._known_devices
        if self.max_devices is None or not wanted:
            return list(rows)
        unknown = sorted(wanted)
        found: set[str] = set()
        for start in range(0, len(unknown), 500):
            part = unknown[start : start + 500]
            marks = ", ".join("?" for _ in part)
            cur.execute(
                self.sql(f"SELECT device_id FROM devices WHERE device_id IN ({marks})"), part
            )
            found.update(str(r[0]) for r in cur.fetchall())
        self._known_devices.update(found)
        new = [d for d in unknown if d not in found]
        if not new:
            return list(rows)
        cur.execute("SELECT COUNT(*) FROM devices")
        room = max(self.max_devices - int(cur.fetchone()[0]), 0)
        refused = set(new[room:])
        if not refused:
            return list(rows)
        result.refused_devices |= refused
        return [row for row in rows if row.device_id not in refused]

    def _cap_models(
        self,
        cur: Any,
        rows: Sequence[Row],
        admitted: dict[str, set[str]],
        result: WriteResult,
    ) -> list[Row]:
        """``rows`` without those naming a model beyond their device's cap.

        The admitted names live in ``device_model_names`` (shared by every instance on the
        database); the cache only saves the query for names already admitted. A name not in
        the cache is checked against the table inside this transaction.
        """
        wanted: dict[str, set[str]] = {}
        for row in rows:
            for name in _model_names(row):
                wanted.setdefault(row.device_id, set()).add(name)
        if len(self._model_names) > 100_000:  # bounded cache: start over
            self._model_names.clear()
        allowed: dict[str, set[str]] = {}
        for device, names in wanted.items():
            known = self._model_names.get(device)
            if known is None or not names <= known:
                cur.execute(
                    self.sql("SELECT model FROM device_model_names WHERE device_id = ?"),
                    (device,),
                )
                known = {str(r[0]) for r in cur.fetchall()}
                new = admit_models(known, names, self.max_models_per_device)
                if new:
                    cur.executemany(
                        self.sql(
                            "INSERT INTO device_model_names (device_id, model) VALUES (?, ?) "
                            "ON CONFLICT (device_id, model) DO NOTHING"
                        ),
                        [(device, name) for name in sorted(new)],
                    )
                known = known | new
                admitted[device] = known
            allowed[device] = known
        kept: list[Row] = []
        for row in rows:
            names = _model_names(row)
            if not names:
                kept.append(row)
                continue
            ok = allowed[row.device_id]
            if isinstance(row, StatusRow):
                models = tuple(m for m in row.models if m[0] in ok)
                result.capped += len(row.models) - len(models)
                kept.append(dataclasses.replace(row, models=models))
            elif names <= ok:
                kept.append(row)
            else:
                result.capped += 1
        return kept

    def ping(self) -> bool:
        """Whether the writer can start a write transaction now.

        This tells a poison record (the database answers, but refuses it) apart from a
        database that is down (nothing may be quarantined then).
        """
        with self._write_lock:
            conn = self._writer
            if conn is None:
                return False
            if self._is_broken(conn):  # the server restarted: reconnect, or say it is down
                try:
                    conn.close()
                except Exception:
                    log.debug("closing a broken writer failed", exc_info=True)
                try:
                    conn = self._writer = self._connect(writer=True)
                except StoreError:
                    log.debug("the monitor database does not answer", exc_info=True)
                    return False
                log.warning("reconnected to the monitor database %s", self.describe())
            try:
                cur = conn.cursor()
                try:
                    self._begin(conn)
                    cur.execute("SELECT 1")
                    cur.fetchall()
                finally:
                    cur.close()
                    conn.rollback()
                return True
            except Exception:
                log.debug("the monitor database does not answer", exc_info=True)
                return False

    def write_dead_letters(
        self, letters: Sequence[DeadLetter], keep: int = DEAD_LETTERS_KEPT
    ) -> None:
        """Store quarantined messages and keep the newest ``keep``; StoreError on failure."""
        if not letters:
            return
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreError("the monitor store is closed")
            cur = conn.cursor()
            try:
                self._begin(conn)
                cur.executemany(
                    self.sql(
                        "INSERT INTO dead_letters (time, device_id, topic, reason, detail, size, "
                        "sha256, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    [
                        (
                            d.time,
                            d.device_id,
                            d.topic,
                            d.reason,
                            d.detail,
                            d.size,
                            d.sha256,
                            d.preview,
                        )
                        for d in letters
                    ],
                )
                cur.execute(
                    self.sql(
                        "DELETE FROM dead_letters WHERE id < (SELECT id FROM dead_letters "
                        "ORDER BY id DESC LIMIT 1 OFFSET ?)"
                    ),
                    (max(keep, 1) - 1,),
                )
                conn.commit()
            except Exception as exc:
                try:
                    conn.rollback()
                except Exception:
                    log.debug("rollback failed", exc_info=True)
                raise StoreError(
                    f"writing dead letters to {self.describe()} failed: {exc}"
                ) from exc
            finally:
                cur.close()

    def _insert(self, cur: Any, kind: type, items: list[Row]) -> tuple[str, int]:
        if kind is DriftRow:
            columns: tuple[str, ...] = _DRIFT_COLUMNS
            table = "drift"
            conflict = "(rkey)"
            values = [_drift_values(r) for r in items if isinstance(r, DriftRow)]
        else:
            table, key, fields = _INSERTS[kind]
            columns = (key, *fields)
            conflict = "(rkey, model, delegate)" if table == "model_load" else "(rkey)"
            values = [(r.key, *(getattr(r, f) for f in fields)) for r in items]  # type: ignore[union-attr]
        marks = ", ".join("?" for _ in columns)
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT {conflict} DO NOTHING"
        )
        cur.executemany(self.sql(statement), values)
        return table, max(int(cur.rowcount), 0)

    def _write_statuses(self, cur: Any, rows: list[StatusRow], received: float) -> None:
        g = self.greatest
        cur.executemany(
            self.sql(
                "INSERT INTO devices (device_id, state, state_since, status_time, last_seen, "
                "first_seen, agent_version, device_class, api, uptime_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET "
                "state_since = CASE WHEN devices.state = excluded.state "
                "THEN devices.state_since ELSE excluded.state_since END, "
                "state = excluded.state, status_time = excluded.status_time, "
                f"last_seen = {g}(devices.last_seen, excluded.last_seen), "
                "agent_version = COALESCE(excluded.agent_version, devices.agent_version), "
                "device_class = COALESCE(excluded.device_class, devices.device_class), "
                "api = COALESCE(excluded.api, devices.api), "
                "uptime_s = COALESCE(excluded.uptime_s, devices.uptime_s) "
                "WHERE excluded.status_time >= devices.status_time"
            ),
            [
                (
                    r.device_id,
                    r.state,
                    received,
                    r.time,
                    received,
                    received,
                    r.agent_version,
                    r.device_class,
                    r.api,
                    r.uptime_s,
                )
                for r in rows
            ],
        )
        for row in rows:
            if not row.models:
                continue  # a last will names no models: keep the last known ones
            cur.execute(
                self.sql("SELECT status_time FROM devices WHERE device_id = ?"), (row.device_id,)
            )
            current = cur.fetchone()
            if current is None or float(current[0]) != row.time:
                continue  # an older status than the one stored
            cur.execute(self.sql("DELETE FROM device_models WHERE device_id = ?"), (row.device_id,))
            cur.executemany(
                self.sql(
                    "INSERT INTO device_models (device_id, model, version, delegate, degraded, "
                    "variant) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, model) DO NOTHING"
                ),
                [(row.device_id, n, v, d, int(deg), var) for n, v, d, deg, var in row.models],
            )

    def _touch_devices(self, cur: Any, seen_at: dict[str, float]) -> None:
        """Records from a device prove it is alive; a device seen first here is created."""
        g = self.greatest
        cur.executemany(
            self.sql(
                "INSERT INTO devices (device_id, state, state_since, status_time, last_seen, "
                "first_seen) VALUES (?, 'online', ?, 0, ?, ?) "
                f"ON CONFLICT (device_id) DO UPDATE SET "
                f"last_seen = {g}(devices.last_seen, excluded.last_seen)"
            ),
            [(device, when, when, when) for device, when in sorted(seen_at.items())],
        )

    # -- alerts (written by the alert loop, on its own connection) -------------------------

    def open_alert(
        self,
        key: str,
        rule: str,
        device_id: str | None,
        subject: str | None,
        severity: str,
        message: str,
        now: float,
    ) -> bool:
        """Record a firing alert; False when another instance (or an earlier run) already did."""
        conn = self.reader()
        cur = conn.cursor()
        try:
            self._begin(conn)
            cur.execute(
                self.sql(
                    "INSERT INTO alerts (akey, rule, device_id, subject, severity, message, "
                    "state, started, updated) VALUES (?, ?, ?, ?, ?, ?, 'firing', ?, ?) "
                    "ON CONFLICT (akey) DO UPDATE SET state = 'firing', started = excluded.started,"
                    " updated = excluded.updated, message = excluded.message, resolved = NULL "
                    "WHERE alerts.state = 'resolved'"
                ),
                (key, rule, device_id, subject, severity, message, now, now),
            )
            opened = int(cur.rowcount) > 0
            conn.commit()
            return opened
        except Exception:
            conn.rollback()
            raise
        finally:
            cur.close()

    def resolve_alert(self, key: str, now: float) -> bool:
        """Mark a firing alert resolved; False when it was not firing."""
        conn = self.reader()
        cur = conn.cursor()
        try:
            self._begin(conn)
            cur.execute(
                self.sql(
                    "UPDATE alerts SET state = 'resolved', resolved = ?, updated = ? "
                    "WHERE akey = ? AND state = 'firing'"
                ),
                (now, now, key),
            )
            done = int(cur.rowcount) > 0
            conn.commit()
            return done
        except Exception:
            conn.rollback()
            raise
        finally:
            cur.close()

    # -- reads -----------------------------------------------------------------------------

    def reader(self) -> Any:
        """The calling thread's read connection (opened on first use, closed by :meth:`close`)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writer=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query (``?`` placeholders); rows as dicts.

        A connection the server cut (a database restart) is replaced and the query tried once
        more, so the dashboard and the alert loop recover with the database.
        """
        for attempt in (1, 2):
            conn = self.reader()
            cur = conn.cursor()
            try:
                cur.execute(self.sql(statement), tuple(params))
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
            except Exception:
                if attempt == 2 or not self._is_broken(conn):
                    raise
                self._forget_reader(conn)
            finally:
                cur.close()
        raise AssertionError("unreachable")

    def _forget_reader(self, conn: Any) -> None:
        self._local.conn = None
        with self._readers_lock:
            if conn in self._readers:
                self._readers.remove(conn)
        try:
            conn.close()
        except Exception:
            log.debug("closing a broken reader failed", exc_info=True)

    # -- retention -------------------------------------------------------------------------

    def prune(self, cutoff: float) -> dict[str, int]:
        """Delete time-series rows older than ``cutoff`` and alerts resolved before it."""
        removed: dict[str, int] = {}
        with self._write_lock:
            conn = self._writer
            cur = conn.cursor()
            try:
                for table in RETAINED_TABLES:
                    self._begin(conn)
                    cur.execute(self.sql(f"DELETE FROM {table} WHERE time < ?"), (cutoff,))
                    removed[table] = max(int(cur.rowcount), 0)
                    conn.commit()
                self._begin(conn)
                cur.execute(
                    self.sql("DELETE FROM alerts WHERE state = 'resolved' AND resolved < ?"),
                    (cutoff,),
                )
                removed["alerts"] = max(int(cur.rowcount), 0)
                conn.commit()
            except Exception as exc:
                conn.rollback()
                raise StoreError(f"retention on {self.describe()} failed: {exc}") from exc
            finally:
                cur.close()
        return removed
