"""Versioned schema migrations, one SQL text for both SQLite and PostgreSQL.

Each migration is applied once, in order, inside a transaction, and recorded in
``schema_migrations``; a database newer than this code is refused (the operator upgraded one
monitor instance and not another). The few type differences are tokens substituted per dialect:
``{ID}`` (auto-increment key), ``{FLOAT}`` and ``{BIGINT}``.

Time columns are unix seconds (``{FLOAT}``) named ``time``; every time-series table has an index
that starts with it or with ``device_id, time``, so retention deletes and windowed reads are
range scans (and the tables are TimescaleDB hypertable candidates, see docs/scale.md).

Migration 2 adds ``dead_letters`` (what ingest could not decode or store, newest rows kept) and
``device_model_names`` (every model name a device has been allowed, for the per-device cap),
filled from the model names already stored. Migration 3 adds ``device_models.variant``: which
of a release's variants (its model file) a device runs, so the rollout gates judge each variant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    description: str
    sql: str


DIALECT_TOKENS = {
    "sqlite": {"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "FLOAT": "REAL", "BIGINT": "INTEGER"},
    "postgresql": {
        "ID": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "FLOAT": "DOUBLE PRECISION",
        "BIGINT": "BIGINT",
    },
}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "devices, telemetry, model load, drift windows, events, samples, alerts",
        """
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    state_since {FLOAT} NOT NULL,
    status_time {FLOAT} NOT NULL,
    last_seen {FLOAT} NOT NULL,
    first_seen {FLOAT} NOT NULL,
    agent_version TEXT,
    device_class TEXT,
    api TEXT,
    uptime_s {FLOAT}
);
CREATE TABLE device_models (
    device_id TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    delegate TEXT NOT NULL,
    degraded {BIGINT} NOT NULL,
    PRIMARY KEY (device_id, model)
);
CREATE INDEX device_models_version ON device_models (model, version);
CREATE TABLE telemetry (
    id {ID},
    rkey TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    time {FLOAT} NOT NULL,
    state TEXT,
    battery_pct {FLOAT},
    max_temp_c {FLOAT},
    power_w {FLOAT},
    cpu_pct {FLOAT},
    memory_pct {FLOAT},
    energy_j {FLOAT},
    power_mode TEXT
);
CREATE INDEX telemetry_device_time ON telemetry (device_id, time);
CREATE INDEX telemetry_time ON telemetry (time);
CREATE TABLE model_load (
    id {ID},
    rkey TEXT NOT NULL,
    device_id TEXT NOT NULL,
    time {FLOAT} NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    delegate TEXT NOT NULL,
    count {BIGINT} NOT NULL,
    errors {BIGINT} NOT NULL,
    throughput {FLOAT},
    p50 {FLOAT},
    p95 {FLOAT},
    p99 {FLOAT},
    sketch TEXT,
    UNIQUE (rkey, model, delegate)
);
CREATE INDEX model_load_device_time ON model_load (device_id, time);
CREATE INDEX model_load_version_time ON model_load (model, version, time);
CREATE INDEX model_load_time ON model_load (time);
CREATE TABLE drift (
    id {ID},
    rkey TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    time {FLOAT} NOT NULL,
    model TEXT NOT NULL,
    window_index {BIGINT} NOT NULL,
    samples {BIGINT} NOT NULL,
    input_severity {FLOAT},
    prediction_severity {FLOAT},
    quality_severity {FLOAT},
    input_alarm TEXT,
    prediction_alarm TEXT,
    quality_alarm TEXT,
    features TEXT NOT NULL,
    profile TEXT
);
CREATE INDEX drift_device_time ON drift (device_id, time);
CREATE INDEX drift_model_time ON drift (model, time);
CREATE INDEX drift_time ON drift (time);
CREATE TABLE events (
    id {ID},
    rkey TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    time {FLOAT} NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    version TEXT,
    state TEXT,
    reason TEXT,
    detail TEXT
);
CREATE INDEX events_device_time ON events (device_id, time);
CREATE INDEX events_kind_time ON events (kind, time);
CREATE INDEX events_time ON events (time);
CREATE TABLE samples (
    id {ID},
    rkey TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    time {FLOAT} NOT NULL,
    model TEXT,
    version TEXT,
    delegate TEXT,
    latency_ms {FLOAT},
    strategy TEXT,
    prediction {BIGINT},
    confidence {FLOAT},
    size {BIGINT} NOT NULL
);
CREATE INDEX samples_device_time ON samples (device_id, time);
CREATE INDEX samples_time ON samples (time);
CREATE TABLE alerts (
    id {ID},
    akey TEXT NOT NULL UNIQUE,
    rule TEXT NOT NULL,
    device_id TEXT,
    subject TEXT,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL,
    started {FLOAT} NOT NULL,
    updated {FLOAT} NOT NULL,
    resolved {FLOAT}
);
CREATE INDEX alerts_state ON alerts (state, started);
""",
    ),
    Migration(
        2,
        "dead letters (quarantined records) and the distinct model names of each device",
        """
CREATE TABLE dead_letters (
    id {ID},
    time {FLOAT} NOT NULL,
    device_id TEXT,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    size {BIGINT} NOT NULL,
    sha256 TEXT NOT NULL,
    preview TEXT
);
CREATE INDEX dead_letters_time ON dead_letters (time);
CREATE TABLE device_model_names (
    device_id TEXT NOT NULL,
    model TEXT NOT NULL,
    PRIMARY KEY (device_id, model)
);
INSERT INTO device_model_names (device_id, model)
    SELECT device_id, model FROM device_models
    UNION SELECT device_id, model FROM model_load
    UNION SELECT device_id, model FROM drift
    UNION SELECT device_id, model FROM events WHERE model IS NOT NULL
    UNION SELECT device_id, model FROM samples WHERE model IS NOT NULL;
""",
    ),
    Migration(
        3,
        "the release variant (model file) each device runs",
        """
ALTER TABLE device_models ADD COLUMN variant TEXT;
""",
    ),
)


def render(migration: Migration, dialect: str) -> list[str]:
    """The statements of ``migration`` for ``dialect`` (``sqlite`` or ``postgresql``)."""
    tokens = DIALECT_TOKENS[dialect]
    sql = migration.sql
    for name, value in tokens.items():
        sql = sql.replace("{" + name + "}", value)
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def pending(applied: int) -> list[Migration]:
    """Migrations newer than ``applied``, in order."""
    return [m for m in MIGRATIONS if m.version > applied]


def latest() -> int:
    """The schema version this code writes."""
    return MIGRATIONS[-1].version
