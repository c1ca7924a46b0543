"""The monitor on a real PostgreSQL server that this module starts (initdb + pg_ctl in a temp
dir, a free port, stopped afterwards). Needs the Debian ``postgresql`` package and
``psycopg[binary]``; without them these tests FAIL (they never skip): CI must provide both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings, open_store
from edge_agent.fleet.monitor.store import migrations
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fixtures.mosquitto import Broker, free_port
from tests.fixtures.postgres import Postgres
from tests.fixtures.postgres import start_postgres as start_server
from tests.fixtures.wait import wait_for


def start_postgres() -> Postgres:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]'")
    try:
        return start_server()
    except RuntimeError as exc:  # CI must provide PostgreSQL: fail, never skip
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.stop()


def test_postgres_ingest_dedupes_and_answers_health_gates(
    postgres: Postgres, mosquitto: Broker
) -> None:
    url = postgres.create_database("ingest")
    settings = MonitorSettings(
        http=None,
        alert_interval_s=3600,
        mqtt_alerts=False,
        ingest=IngestSettings(client_id="pg-monitor"),
    )
    monitor = Monitor(url, mosquitto.url, settings).start()
    client = MqttClient(mosquitto.url, "pg-publisher")
    client.connect()
    try:
        status = topics.device_topic("pg-1", DeviceChannel.STATUS)
        tele = topics.device_topic("pg-1", DeviceChannel.TELEMETRY)
        drift = topics.device_topic("pg-1", DeviceChannel.DRIFT)
        items = [(tele, feed.telemetry("pg-1", i, errors=1)) for i in range(1, 51)]
        infos = [client.publish(status, feed.status("pg-1"), qos=1, retain=True)]
        infos += [client.publish(t, p, qos=1) for t, p in items + items]
        infos += [client.publish(drift, m, qos=1) for m in feed.drift_messages("digits", 3.0)]
        infos.append(client.publish(tele, b"garbage", qos=1))
        for info in infos:
            info.wait_for_publish(10)
        wait_for(lambda: monitor.stats()["received_total"] >= len(infos), 15)
        assert monitor.wait_idle(15)
        rows = monitor.store.rows("SELECT COUNT(*) AS n FROM telemetry")
        assert rows[0]["n"] == 50
        assert monitor.stats()["duplicates"] == 50
        assert monitor.stats()["dropped"] == {"not_json": 1}
        health = monitor.version_health("digits", "1", window_s=600)
        assert health.inferences == 200 and health.errors == 50
        assert health.latency_p95_ms == pytest.approx(20.0, rel=0.02)
        assert health.drift_alarm is True
        assert monitor.online("pg-1")
    finally:
        client.close()
        monitor.stop()


def test_postgres_migrations_are_applied_once(postgres: Postgres) -> None:
    url = postgres.create_database("migrations")
    first = open_store(url)
    first.close()
    second = open_store(url)
    try:
        assert second.migrate() == []
        versions = second.rows("SELECT version FROM schema_migrations")
        assert sorted(r["version"] for r in versions) == list(range(1, migrations.latest() + 1))
    finally:
        second.close()


def test_postgres_answers_the_fleet_power_and_drift_views(postgres: Postgres) -> None:
    """The bucketed SQL of the Power and Drift pages means the same as on SQLite."""
    from tests.unit.fleet.test_fleet_views import check_views

    store = open_store(postgres.create_database("views"))
    try:
        check_views(store)
    finally:
        store.close()


def test_unreachable_postgres_is_a_clear_error() -> None:
    from edge_agent.fleet.monitor import StoreError

    with pytest.raises(StoreError, match="cannot connect to the monitor database") as caught:
        open_store(f"postgresql://monitor:secret@127.0.0.1:{free_port()}/none")
    assert "secret" not in str(caught.value)  # the password never reaches logs
