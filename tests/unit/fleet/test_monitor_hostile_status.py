"""A hostile status (lone surrogate, NUL) cannot wedge the monitor's batch write (real SQLite).

Regression for issue 12's first bug: a status whose text the database cannot encode (a lone
UTF-16 surrogate; NUL for PostgreSQL) failed the whole batch, and ingest retried that batch
forever, so no other device was stored again. The wire contract now cleans every text field
on decode, so the batch with the hostile status commits and the other devices are stored.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.fleet.monitor.payloads import Row, StatusRow, parse_message
from edge_agent.fleet.monitor.store import open_store
from tests.fakes import fleet_feed as feed

NOW = 1_800_000_000.0


def hostile_status() -> bytes:
    """Valid JSON whose strings decode to a lone surrogate and to NUL."""
    return (
        b'{"device_id": "evil", "state": "online", "agent_version": "1\\ud800", '
        b'"device_class": "x\\u0000y", "api": "\\udfff\\u0000", "time": 1800000000.0, '
        b'"models": [{"name": "digits\\ud800", "version": "\\u0000", "delegate": "cpu"}]}'
    )


def test_a_status_with_a_lone_surrogate_and_nul_does_not_block_other_devices(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        rows: list[Row] = []
        rows += parse_message("ea/v1/evil/status", hostile_status(), NOW, 1 << 20).rows
        for index in range(8):
            device = f"good-{index}"
            payload = feed.status(device, when=NOW)
            rows += parse_message(f"ea/v1/{device}/status", payload, NOW, 1 << 20).rows
        (evil,) = [r for r in rows if isinstance(r, StatusRow) and r.device_id == "evil"]
        for text in (evil.agent_version, evil.device_class, evil.api, *evil.models[0][:3]):
            assert text is not None and "\x00" not in text
            text.encode("utf-8")  # strict: a lone surrogate would raise here
        store.write_batch(rows, NOW)
        stored = {r["device_id"] for r in store.rows("SELECT device_id FROM devices")}
        assert stored == {"evil", *(f"good-{i}" for i in range(8))}
        (row,) = store.rows("SELECT * FROM devices WHERE device_id = 'evil'")
        assert "\x00" not in json.dumps(dict(row))
    finally:
        store.close()


def test_hostile_text_in_every_channel_is_stored_clean(tmp_path: Path) -> None:
    """Surrogates and NUL in telemetry, drift, rollout and sample metadata all reach SQLite."""
    evil = "\\ud800\\u0000"
    telemetry = (
        b'{"id": "ob-1", "created": 1800000000.0, "data": {"state": "online'
        + evil.encode()
        + b'", "power_mode": "'
        + evil.encode()
        + b'", "load": {"models": [{"model": "m'
        + evil.encode()
        + b'", "delegate": "'
        + evil.encode()
        + b'", "count": 3}]}}}'
    )
    drift = (
        b'{"id": "ob-2", "data": {"model": "m' + evil.encode() + b'", "signals": {"input": '
        b'{"severity": 2.0, "detail": {"ratios": {"f' + evil.encode() + b'": 2.0}}}}}}'
    )
    rollout = (
        b'{"model": "m'
        + evil.encode()
        + b'", "state": "rejected", "reason": "'
        + (evil.encode() + b'", "time": 1800000000.0, "evidence": {"k' + evil.encode() + b'": 1}}')
    )
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        rows: list[Row] = []
        for channel, payload in (
            ("telemetry", telemetry),
            ("drift", drift),
            ("rollout", rollout),
        ):
            rows += parse_message(f"ea/v1/evil/{channel}", payload, NOW, 1 << 20).rows
        result = store.write_batch(rows, NOW)
        assert result.new == 3
    finally:
        store.close()
