"""The monitor against a real Mosquitto and a real SQLite file: every channel, dedupe, garbage,
acknowledgement after commit, health gates, retention."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for


def settings(client_id: str = "monitor-test", **kw: object) -> MonitorSettings:
    return MonitorSettings(
        http=None,
        alert_interval_s=3600,
        mqtt_alerts=False,
        ingest=IngestSettings(client_id=client_id),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def device(mosquitto: Broker) -> Iterator[MqttClient]:
    client = MqttClient(mosquitto.url, "publisher")
    client.connect()
    yield client
    client.close()


def publish_all(client: MqttClient, items: list[tuple[str, bytes]], retain: bool = False) -> None:
    infos = [client.publish(t, p, qos=1, retain=retain) for t, p in items]
    for info in infos:
        info.wait_for_publish(10)


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        value = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    conn.close()
    return int(value)


def test_every_channel_is_stored_once_and_garbage_is_counted(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    db = tmp_path / "monitor.db"
    monitor = Monitor(f"sqlite:///{db}", mosquitto.url, settings()).start()
    try:
        t = lambda d, c: topics.device_topic(d, c)  # noqa: E731
        publish_all(device, [(t("cam-1", DeviceChannel.STATUS), feed.status("cam-1"))], retain=True)
        telemetry = [
            (t("cam-1", DeviceChannel.TELEMETRY), feed.telemetry("cam-1", i, errors=1))
            for i in range(1, 21)
        ]
        drift = [(t("cam-1", DeviceChannel.DRIFT), m) for m in feed.drift_messages("digits", 3.0)]
        rollout = [
            (
                t("cam-1", DeviceChannel.ROLLOUT),
                feed.rollout(
                    "digits",
                    "2",
                    "rejected",
                    "agreement 0.41 < 0.95",
                    agreement=0.41,
                    compared=50,
                    error_rate=0.0,
                ),
            )
        ]
        samples = [(t("cam-1", DeviceChannel.SAMPLES), c) for c in feed.sample_chunks("a" * 32)]
        garbage = [
            (t("cam-1", DeviceChannel.TELEMETRY), b"\xff\xfe not json"),
            (t("cam-1", DeviceChannel.TELEMETRY), b"[1, 2, 3]"),
            (t("cam-1", DeviceChannel.TELEMETRY), b'{"id": 5, "data": {}}'),
            (t("cam-1", DeviceChannel.DRIFT), b'{"id": "x-1", "data": {"signals": 3}}'),
            (t("cam-1", DeviceChannel.ROLLOUT), b'{"state": "exploded"}'),
            (t("cam-1", DeviceChannel.SAMPLES), b"no header line"),
            (t("cam-1", DeviceChannel.TELEMETRY), b"{" * 100_000),
            (t("cam-1", DeviceChannel.TELEMETRY), b" " * (3 * 1024 * 1024)),
        ]
        # at-least-once: every telemetry record arrives twice
        publish_all(device, telemetry + telemetry + drift + rollout + samples + garbage)
        assert monitor.wait_idle(15)
        wait_for(lambda: monitor.stats()["received_total"] >= 1 + 40 + len(drift) + 1 + 3 + 8)
        assert monitor.wait_idle(15)

        assert count(db, "telemetry") == 20
        assert count(db, "model_load") == 20
        assert count(db, "drift") == 3
        assert len(drift) > 3, "the shifted feature raised an alarm transition"
        assert count(db, "events") == 1 + len(drift) - 3  # rollout + drift alarm transitions
        assert count(db, "samples") == 1
        stats = monitor.stats()
        assert stats["duplicates"] == 20
        assert stats["dropped_total"] == len(garbage)
        assert stats["dropped"]["too_large"] == 1
        assert stats["dropped"]["not_json"] >= 2
        assert stats["sample_chunks"] == len(samples) - 1

        fleet = monitor.fleet()
        (row,) = fleet["devices"]
        assert row["device_id"] == "cam-1" and row["state"] == "online"
        assert row["models"] == [
            {"name": "digits", "version": "1", "delegate": "cpu", "degraded": False}
        ]
        health = monitor.version_health("digits", "1", window_s=600)
        # each report: 4 inferences (5, 6, 7, 20 ms) and 1 error
        assert health.inferences == 80 and health.errors == 20
        assert health.error_rate == pytest.approx(20 / 100)
        assert health.latency_p95_ms == pytest.approx(20.0, rel=0.02)
        assert health.drift_alarm is True and health.drift_alarm_devices == ["cam-1"]
        assert health.online == 1 and health.all_online
        device_health = monitor.device_health("cam-1", window_s=600)
        assert device_health.shadow_agreement == pytest.approx(0.41)
        assert monitor.online("cam-1")
    finally:
        monitor.stop()


def test_last_will_marks_device_offline_and_keeps_its_models(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    db = tmp_path / "monitor.db"
    monitor = Monitor(str(db), mosquitto.url, settings()).start()
    try:
        status_topic = topics.device_topic("cam-2", DeviceChannel.STATUS)
        old = feed.status("cam-2", when=time.time() - 60, models=[("digits", "0", "cpu")])
        publish_all(device, [(status_topic, feed.status("cam-2"))], retain=True)
        publish_all(device, [(status_topic, old)], retain=True)  # stale reordering: ignored
        assert monitor.wait_idle(10)
        wait_for(lambda: monitor.online("cam-2"))
        publish_all(device, [(status_topic, feed.last_will("cam-2"))], retain=True)
        wait_for(lambda: not monitor.online("cam-2"))
        (row,) = monitor.fleet()["devices"]
        assert row["state"] == "offline"
        assert row["models"][0]["version"] == "1"
    finally:
        monitor.stop()


def test_records_published_while_the_monitor_is_down_are_stored_after_restart(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    """The persistent session: the broker queues for the monitor; nothing is lost."""
    db = tmp_path / "monitor.db"
    Monitor(str(db), mosquitto.url, settings("persistent-monitor")).start().stop()
    topic = topics.device_topic("cam-3", DeviceChannel.TELEMETRY)
    publish_all(device, [(topic, feed.telemetry("cam-3", i)) for i in range(1, 301)])
    monitor = Monitor(str(db), mosquitto.url, settings("persistent-monitor")).start()
    try:
        wait_for(lambda: count(db, "telemetry") == 300, timeout=20)
        assert monitor.wait_idle(10)
        assert count(db, "telemetry") == 300
    finally:
        monitor.stop()


def test_retention_deletes_old_rows_only(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    db = tmp_path / "monitor.db"
    monitor = Monitor(str(db), mosquitto.url, settings(retention_days=1)).start()
    try:
        topic = topics.device_topic("cam-4", DeviceChannel.TELEMETRY)
        old = time.time() - 3 * 86400
        publish_all(
            device,
            [
                (topic, feed.telemetry("cam-4", 1, created=old + 3600)),
                (topic, feed.telemetry("cam-4", 2)),
            ],
        )
        wait_for(lambda: count(db, "telemetry") == 2)
        removed = monitor.apply_retention()
        assert removed["telemetry"] == 1 and removed["model_load"] == 1
        assert count(db, "telemetry") == 1
    finally:
        monitor.stop()


def test_unusable_database_path_is_a_clear_error(mosquitto: Broker, tmp_path: Path) -> None:
    from edge_agent.fleet.monitor import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the monitor database"):
        Monitor(str(blocker / "monitor.db"), mosquitto.url, settings()).start()


def test_schema_newer_than_the_code_is_refused(mosquitto: Broker, tmp_path: Path) -> None:
    from edge_agent.fleet.monitor import StoreError

    db = tmp_path / "monitor.db"
    Monitor(str(db), mosquitto.url, settings()).start().stop()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    conn.close()
    with pytest.raises(StoreError, match="newer than this monitor knows"):
        Monitor(str(db), mosquitto.url, settings()).start()


def test_sample_payload_bytes_are_not_stored(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    db = tmp_path / "monitor.db"
    monitor = Monitor(str(db), mosquitto.url, settings()).start()
    try:
        topic = topics.device_topic("cam-5", DeviceChannel.SAMPLES)
        chunks = feed.sample_chunks("b" * 32, size=50_000, chunk=8192)
        publish_all(device, [(topic, c) for c in chunks + chunks])
        wait_for(lambda: monitor.stats()["received_total"] == 2 * len(chunks))
        assert monitor.wait_idle(10)
        assert count(db, "samples") == 1
        detail = json.loads(json.dumps(monitor.store.rows("SELECT * FROM samples")))
        assert detail[0]["prediction"] == 7 and detail[0]["size"] == 50_000
        assert db.stat().st_size < 50_000 * 2
    finally:
        monitor.stop()


def test_a_hostile_retained_status_does_not_stop_ingest(
    mosquitto: Broker, device: MqttClient, tmp_path: Path
) -> None:
    """Regression (issue 12, first bug): a retained status with a lone surrogate and NUL wedged
    the batch write, so eight well-behaved devices after it were never stored."""
    hostile = (
        b'{"device_id": "evil", "state": "online", "agent_version": "1\\ud800", '
        b'"api": "\\udfff\\u0000", "time": ' + str(time.time()).encode() + b"}"
    )
    t = lambda d: topics.device_topic(d, DeviceChannel.STATUS)  # noqa: E731
    publish_all(device, [(t("evil"), hostile)], retain=True)
    publish_all(device, [(t(f"good-{i}"), feed.status(f"good-{i}")) for i in range(8)], retain=True)
    db = tmp_path / "monitor.db"
    monitor = Monitor(f"sqlite:///{db}", mosquitto.url, settings()).start()
    try:
        wait_for(lambda: count(db, "devices") == 9, timeout=15)
        assert monitor.stats()["write_errors"] == 0
    finally:
        monitor.stop()
