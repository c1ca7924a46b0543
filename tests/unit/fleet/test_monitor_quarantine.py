"""Quarantine, rate limit and caps: the pure decisions, and the store on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge_agent.fleet.monitor.alerts import Condition, cap_conditions, device_limit_conditions
from edge_agent.fleet.monitor.metrics import OTHER, fold_versions
from edge_agent.fleet.monitor.payloads import Row, parse_message
from edge_agent.fleet.monitor.quarantine import (
    DeviceRateLimiter,
    admit_models,
    dead_letter,
    isolate,
    recent_dead_letters,
)
from edge_agent.fleet.monitor.store import StoreError, migrations, open_store
from edge_agent.fleet.monitor.store.sqlite import SqliteStore
from tests.fakes import fleet_feed as feed

NOW = 1_800_000_000.0


def test_isolate_commits_everything_but_the_poison_in_few_transactions() -> None:
    committed: list[int] = []
    attempts = 0

    def commit(part: Sequence[int]) -> int:
        nonlocal attempts
        attempts += 1
        if 1234 in part:
            raise StoreError("refused")
        committed.extend(part)
        return len(part)

    results, poison = isolate(list(range(2000)), commit, lambda: True)
    assert sorted(committed) == [i for i in range(2000) if i != 1234]
    assert [item for item, _exc in poison] == [1234]
    assert sum(results) == 1999
    assert attempts <= 2 * 11 + 2  # about 2 * log2(2000), and the poison tried twice alone


def test_isolate_never_quarantines_during_an_outage() -> None:
    def commit(part: object) -> None:
        raise StoreError("connection refused")

    with pytest.raises(StoreError):
        isolate([1, 2, 3], commit, lambda: False)


def test_a_flooding_device_is_limited_and_others_are_not() -> None:
    limiter = DeviceRateLimiter(rate=10.0, burst=20.0)
    flood = sum(limiter.allow("flood", NOW + i / 1000) for i in range(1000))  # 1000 in 1 s
    assert 20 <= flood <= 31
    assert all(limiter.allow("calm", NOW + 1 + i) for i in range(100))
    assert DeviceRateLimiter(None, 1.0).allow("any", NOW)


def test_the_rate_limiter_forgets_quiet_devices_so_it_stays_bounded() -> None:
    limiter = DeviceRateLimiter(rate=1.0, burst=5.0, max_devices=100)
    for i in range(10_000):
        limiter.allow(f"d{i}", NOW + i)
    assert len(limiter) <= 100


def test_admit_models_fills_the_cap_in_sorted_order_then_refuses() -> None:
    assert admit_models(set(), ["c", "a", "b"], 2) == {"a", "b"}
    assert admit_models({"a", "b"}, ["c"], 2) == set()
    assert admit_models({"a"}, ["a", "b"], 2) == {"b"}


def test_dead_letters_are_clean_text_whatever_the_bytes() -> None:
    letter = dead_letter(
        "ea/v1/x/telemetry\x00", b"\x00\xff\xfe" * 10_000, "x", "not_json", "e", NOW
    )
    assert letter.size == 30_000 and len(letter.sha256) == 64
    for text in (letter.topic, letter.preview, letter.detail):
        assert text is not None and "\x00" not in text
        text.encode("utf-8")
    assert letter.preview is not None and len(letter.preview) <= 512


def condition(device: str | None, key: str, severity: str = "warning") -> Condition:
    return Condition(key, "rollout_failure", device, None, severity, key)


def test_alerts_per_device_are_capped_keeping_firing_then_critical() -> None:
    conditions = [condition("evil", f"k{i:05d}") for i in range(10_000)]
    conditions += [condition("evil", "critical", "critical"), condition("good", "g")]
    conditions += [condition(None, "fleet")]
    kept, left_out = cap_conditions(conditions, {"k09999"}, 16)
    keys = [c.key for c in kept if c.device_id == "evil"]
    assert len(keys) == 16 and left_out == 10_001 - 16
    assert keys[:2] == ["k09999", "critical"]
    assert {"g", "fleet"} <= {c.key for c in kept}


def test_invented_model_names_fold_into_a_bounded_number_of_series() -> None:
    versions = {f"invented-{i}": {"1": 1} for i in range(10_000)}
    versions["digits"] = {str(v): 100 - v for v in range(60)}
    rows = fold_versions(versions, 50)
    assert len(rows) <= 2 * 50 + 1
    assert (OTHER, OTHER, 10_000) in rows
    assert ("digits", OTHER, sum(100 - v for v in range(50, 60))) in rows


def test_store_caps_model_names_per_device_across_batches(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.max_models_per_device = 3
    try:
        for index, model in enumerate(["a", "b", "c", "d", "e"], start=1):
            payload = feed.telemetry("dev", index, model=model)
            rows = parse_message("ea/v1/dev/telemetry", payload, NOW, 1 << 20).rows
            result = store.write_batch(rows, NOW)
            assert result.capped == (1 if model in "de" else 0)
        models = store.rows("SELECT DISTINCT model FROM model_load ORDER BY model")
        assert [r["model"] for r in models] == ["a", "b", "c"]
        assert len(store.rows("SELECT * FROM telemetry")) == 5  # the reports are kept
        status = feed.status("dev", models=[("a", "1", "cpu"), ("z", "1", "cpu")], when=NOW)
        rows = parse_message("ea/v1/dev/status", status, NOW, 1 << 20).rows
        assert store.write_batch(rows, NOW).capped == 1
        assert [r["model"] for r in store.rows("SELECT model FROM device_models")] == ["a"]
    finally:
        store.close()


def test_store_admits_known_devices_and_at_most_max_devices_new_ones(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.max_devices = 4
    try:

        def rows(device: str, seq: int) -> list[Row]:
            payload = feed.telemetry(device, seq)
            return parse_message(f"ea/v1/{device}/telemetry", payload, NOW, 1 << 20).rows

        assert not store.write_batch(rows("known", 1), NOW).refused_devices
        batch = [r for i in range(10) for r in rows(f"new-{i}", 1)] + rows("known", 2)
        result = store.write_batch(batch, NOW)
        assert result.refused_devices == {f"new-{i}" for i in range(3, 10)}
        devices = store.rows("SELECT device_id FROM devices ORDER BY device_id")
        assert [r["device_id"] for r in devices] == ["known", "new-0", "new-1", "new-2"]
        store._known_devices.clear()  # a restarted monitor asks the database again
        again = store.write_batch(rows("new-1", 2) + rows("new-9", 2) + rows("known", 3), NOW)
        assert again.refused_devices == {"new-9"}
        assert len(store.rows("SELECT * FROM telemetry WHERE device_id = 'known'")) == 3
        store.max_devices = None
        assert not store.write_batch(rows("new-9", 3), NOW).refused_devices
    finally:
        store.close()


def test_the_device_limit_is_one_fleet_wide_alert() -> None:
    assert device_limit_conditions(3, 4) == []
    assert device_limit_conditions(5, None) == []
    (condition,) = device_limit_conditions(4, 4)
    assert condition.key == "device_limit" and condition.device_id is None
    assert "device limit reached" in condition.message


def test_dead_letter_table_keeps_the_newest_rows(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        for batch in range(5):
            letters = [
                dead_letter(
                    "ea/v1/x/telemetry", b"%d" % (batch * 100 + i), "x", "not_json", "", NOW
                )
                for i in range(100)
            ]
            store.write_dead_letters(letters, keep=150)
        shown = recent_dead_letters(store, limit=10)
        assert shown["total"] == 150 and shown["by_reason"] == {"not_json": 150}
        assert shown["dead_letters"][0]["preview"] == "499"
        assert store.ping()
    finally:
        store.close()
    assert not store.ping()


def test_migration_2_upgrades_a_version_1_database_and_keeps_its_models(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    old = SqliteStore(f"sqlite:///{db}", db)
    old._writer = old._connect(writer=True)
    try:
        old.schema_version()
        conn = old._writer
        for statement in migrations.render(migrations.MIGRATIONS[0], "sqlite"):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'v1', 0)")
        conn.execute(
            "INSERT INTO device_models VALUES ('cam', 'digits', '1', 'cpu', 0), "
            "('cam', 'faces', '2', 'cpu', 0)"
        )
    finally:
        old.close()
    store = open_store(str(db))
    try:
        assert store.schema_version() == migrations.latest() == 3
        names = store.rows("SELECT model FROM device_model_names ORDER BY model")
        assert [r["model"] for r in names] == ["digits", "faces"]
        # migration 3: the variant column, unknown for what version 1 stored
        kept = store.rows("SELECT model, variant FROM device_models ORDER BY model")
        assert kept == [{"model": "digits", "variant": None}, {"model": "faces", "variant": None}]
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        assert json.dumps(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()) == "[0]"
    conn.close()
