"""Migrations render for both dialects; SQLite store dedupes within and across batches."""

from __future__ import annotations

from pathlib import Path

from edge_agent.fleet.monitor.health import merged_p95_ms
from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.fleet.monitor.store import migrations, open_store
from tests.fakes import fleet_feed as feed


def test_migrations_render_per_dialect() -> None:
    for dialect in ("sqlite", "postgresql"):
        statements = migrations.render(migrations.MIGRATIONS[0], dialect)
        assert statements and not any("{" in s for s in statements)
    assert migrations.pending(0) == list(migrations.MIGRATIONS)
    assert migrations.pending(migrations.latest()) == []


def test_batches_dedupe_redeliveries(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        rows = [
            r
            for i in (1, 2, 1)
            for r in parse_message("ea/v1/a/telemetry", feed.telemetry("a", i), 1e9, 1 << 20).rows
        ]
        first = store.write_batch(rows, 1e9)
        assert first.new == 2 and first.duplicates == 1
        again = store.write_batch(rows, 1e9)
        assert again.new == 0 and again.duplicates == 3
        assert store.rows("SELECT COUNT(*) AS n FROM model_load")[0]["n"] == 2
        assert store.rows("SELECT state FROM devices")[0]["state"] == "online"
    finally:
        store.close()


def test_merged_p95_is_the_p95_of_all_inferences() -> None:
    import json

    fast = json.loads(feed.telemetry("a", 1, latencies_ms=[1.0] * 95))["data"]
    slow = json.loads(feed.telemetry("a", 2, latencies_ms=[100.0] * 5))["data"]
    sketches = [json.dumps(d["load"]["models"][0]["sketch"]) for d in (fast, slow)]
    # separately their p95s are 1 ms and 100 ms; together 95 of 100 inferences took 1 ms
    assert merged_p95_ms(sketches, []) < 2.0
    assert merged_p95_ms([None, "garbage"], [3.0, 7.0]) == 7.0
