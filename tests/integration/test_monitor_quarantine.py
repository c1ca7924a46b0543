"""Quarantine, never block: hostile devices against the monitor, through a real Mosquitto, on a
real SQLite file and a real PostgreSQL server (started by this module; fails, never skips).

The wire contract already cleans every poison known today (lone surrogates, NUL, overflowing
numbers), so these tests make the database itself refuse a record: a trigger that raises on
one device's telemetry stands for the next poison nobody has found yet (a value a column or an
operator's constraint refuses, a cleaner bug). The monitor must store everything else, keep the
refused record as a dead letter and acknowledge it, so it never comes back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings
from edge_agent.fleet.monitor.alerts import AlertRules
from edge_agent.fleet.monitor.quarantine import recent_dead_letters
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fixtures.mosquitto import Broker
from tests.fixtures.postgres import Postgres, start_postgres
from tests.fixtures.wait import wait_for

_REFUSE_SQLITE = (
    "CREATE TRIGGER refuse_{name} BEFORE INSERT ON {table} WHEN {when} "
    "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
)
_REFUSE_POSTGRES = (
    "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'refused by the test trigger'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER refuse_{name} BEFORE INSERT ON {table} FOR EACH ROW WHEN ({when}) "
    "EXECUTE FUNCTION refuse()",
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]'")
    try:
        server = start_postgres()
    except RuntimeError as exc:  # CI must provide PostgreSQL: fail, never skip
        pytest.fail(str(exc))
    yield server
    server.stop()


class Database:
    """One monitor database and a second connection to it, as an operator would have."""

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.kind = url, kind

    def execute(self, *statements: str) -> None:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite://"), isolation_level=None)
            try:
                for statement in statements:
                    conn.executescript(statement)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as pg:
                for statement in statements:
                    pg.execute(statement.encode())

    def refuse(self, name: str, table: str, when: str) -> None:
        """From now on the database refuses rows of ``table`` for which ``when`` holds."""
        templates = (_REFUSE_SQLITE,) if self.kind == "sqlite" else _REFUSE_POSTGRES
        self.execute(*(t.format(name=name, table=table, when=when) for t in templates))

    def allow(self, name: str, table: str) -> None:
        on = "" if self.kind == "sqlite" else f" ON {table}"
        self.execute(f"DROP TRIGGER refuse_{name}{on}")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite://{tmp_path / 'monitor.db'}", "sqlite")
    server: Postgres = request.getfixturevalue("postgres")
    name = f"q{int(time.time() * 1000) % 10**9}{len(request.node.name)}"
    return Database(server.create_database(name), "postgres")


def settings(client_id: str, **ingest: Any) -> MonitorSettings:
    return MonitorSettings(
        http=None,
        alert_interval_s=3600,
        mqtt_alerts=False,
        ingest=IngestSettings(client_id=client_id, **ingest),
    )


@pytest.fixture
def device(mosquitto: Broker) -> Iterator[MqttClient]:
    client = MqttClient(mosquitto.url, "publisher")
    client.connect()
    yield client
    client.close()


def publish_all(client: MqttClient, items: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(10)


def tele(device: str) -> str:
    return topics.device_topic(device, DeviceChannel.TELEMETRY)


def count(monitor: Monitor, statement: str) -> int:
    return int(monitor.store.rows(statement)[0]["n"])


def test_a_record_the_database_refuses_is_quarantined_and_cannot_wedge_ingest(
    mosquitto: Broker, device: MqttClient, database: Database
) -> None:
    """Regression (issue 12): one record the database refused made ingest retry its batch
    forever, so nothing else was stored or acknowledged, and it came back after a restart."""
    monitor = Monitor(database.url, mosquitto.url, settings("q-monitor")).start()
    try:
        database.refuse("evil", "telemetry", "NEW.device_id = 'evil'")
        good = [
            (tele(f"good-{d}"), feed.telemetry(f"good-{d}", i)) for d in range(8) for i in (1, 2)
        ]
        items = [*good[:8], (tele("evil"), feed.telemetry("evil", 1)), *good[8:]]
        publish_all(device, items)
        wait_for(lambda: monitor.stats()["received_total"] >= len(items), 15)
        assert monitor.wait_idle(15)
        assert count(monitor, "SELECT COUNT(*) AS n FROM telemetry") == len(good)
        assert count(monitor, "SELECT COUNT(*) AS n FROM telemetry WHERE device_id = 'evil'") == 0
        stats = monitor.stats()
        assert stats["quarantined"] == {"store_error": 1}
        letters = recent_dead_letters(monitor.store)
        assert letters["total"] == 1
        (letter,) = letters["dead_letters"]
        assert letter["device_id"] == "evil" and letter["reason"] == "store_error"
        assert "refused by the test trigger" in letter["detail"]
        assert letter["topic"] == tele("evil") and letter["size"] > 0
    finally:
        monitor.stop()
    # it was acknowledged: a new session of the same monitor is not sent it again
    again = Monitor(database.url, mosquitto.url, settings("q-monitor")).start()
    try:
        publish_all(device, [(tele("good-0"), feed.telemetry("good-0", 3))])
        wait_for(lambda: again.stats()["received_total"] >= 1, 15)
        assert again.wait_idle(15)
        time.sleep(0.5)
        assert again.stats()["received_total"] == 1
        assert again.stats()["quarantined_total"] == 0
    finally:
        again.stop()


def test_a_database_refusing_everything_loses_nothing_and_quarantines_nothing(
    mosquitto: Broker, device: MqttClient, database: Database
) -> None:
    """A database that takes nothing, not even the dead letters (disk full, permissions), is
    an outage, not poison: the batch waits unacknowledged and is stored once it recovers."""
    monitor = Monitor(database.url, mosquitto.url, settings("q-outage")).start()
    try:
        database.refuse("all", "telemetry", "1 = 1")
        database.refuse("letters", "dead_letters", "1 = 1")
        items = [(tele("cam"), feed.telemetry("cam", i)) for i in range(1, 11)]
        publish_all(device, items)
        wait_for(lambda: monitor.stats()["write_errors"] >= 2, 15)
        assert monitor.stats()["quarantined_total"] == 0
        database.allow("all", "telemetry")
        database.allow("letters", "dead_letters")
        wait_for(lambda: count(monitor, "SELECT COUNT(*) AS n FROM telemetry") == 10, 30)
        assert monitor.wait_idle(15)
        assert monitor.stats()["quarantined_total"] == 0
        assert recent_dead_letters(monitor.store)["total"] == 0
    finally:
        monitor.stop()


def test_undecodable_messages_fill_a_bounded_dead_letter_table(
    mosquitto: Broker, device: MqttClient, tmp_path: Any
) -> None:
    """A device sending garbage: each message is counted and kept as a dead letter, the table
    holds only the newest ``dead_letters_kept``, and the dashboard's API shows them."""
    url = f"sqlite://{tmp_path / 'monitor.db'}"
    config = settings("q-garbage", dead_letters_kept=50)
    config.http = "127.0.0.1:0"
    monitor = Monitor(url, mosquitto.url, config).start()
    try:
        garbage = [(tele("noisy"), b"\xff\x00garbage %d" % i) for i in range(200)]
        publish_all(device, [*garbage, (tele("fine"), feed.telemetry("fine", 1))])
        wait_for(lambda: monitor.stats()["received_total"] >= 201, 15)
        assert monitor.wait_idle(15)
        assert monitor.stats()["quarantined"] == {"not_json": 200}
        assert count(monitor, "SELECT COUNT(*) AS n FROM dead_letters") == 50
        assert count(monitor, "SELECT COUNT(*) AS n FROM telemetry") == 1
        import urllib.request

        with urllib.request.urlopen(f"{monitor.url}/api/dead-letters", timeout=10) as answer:
            shown = json.loads(answer.read())
        assert shown["total"] == 50 and shown["by_reason"] == {"not_json": 50}
        assert shown["dead_letters"][0]["preview"].endswith("garbage 199")
        assert "\x00" not in json.dumps(shown)
        with urllib.request.urlopen(f"{monitor.url}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'edge_monitor_dead_letters_total{reason="not_json"} 200.0' in metrics
    finally:
        monitor.stop()


def test_a_device_flooding_messages_is_rate_limited_and_others_are_stored(
    mosquitto: Broker, device: MqttClient, tmp_path: Any
) -> None:
    url = f"sqlite://{tmp_path / 'monitor.db'}"
    config = settings("q-flood", device_rate_per_s=5.0, device_burst=50.0)
    monitor = Monitor(url, mosquitto.url, config).start()
    try:
        started = time.monotonic()
        flood = [(tele("flood"), feed.telemetry("flood", i)) for i in range(1, 1001)]
        calm = [(tele("calm"), feed.telemetry("calm", i)) for i in range(1, 21)]
        publish_all(device, flood[:500] + calm + flood[500:])
        wait_for(lambda: monitor.stats()["received_total"] >= 1020, 30)
        assert monitor.wait_idle(15)
        elapsed = time.monotonic() - started
        flooded = count(monitor, "SELECT COUNT(*) AS n FROM telemetry WHERE device_id = 'flood'")
        assert flooded <= 50 + 5.0 * elapsed + 1
        assert monitor.stats()["dropped"]["rate_limited"] == 1000 - flooded
        assert count(monitor, "SELECT COUNT(*) AS n FROM telemetry WHERE device_id = 'calm'") == 20
    finally:
        monitor.stop()


def _report_with_models(device: str, seq: int, names: list[str]) -> bytes:
    """A real telemetry envelope whose load lists ``names`` (a device inventing models)."""
    envelope = json.loads(feed.telemetry(device, seq))
    entry = envelope["data"]["load"]["models"][0]
    envelope["data"]["load"]["models"] = [{**entry, "model": name} for name in names]
    return json.dumps(envelope).encode()


def test_a_device_inventing_10000_model_names_gets_at_most_the_cap_of_models_and_alerts(
    mosquitto: Broker, device: MqttClient, tmp_path: Any
) -> None:
    """Regression (issue 12): one alert, one dashboard row and one series per invented model
    name. Now a device keeps at most ``max_models_per_device`` names and ``max_alerts_per_device``
    firing alerts, and /metrics stays a bounded number of series."""
    url = f"sqlite://{tmp_path / 'monitor.db'}"
    config = settings("q-names", device_rate_per_s=None)
    config.max_models_per_device = 64
    config.rules = AlertRules(max_alerts_per_device=16)
    monitor = Monitor(url, mosquitto.url, config).start()
    rollout = topics.device_topic("inventor", DeviceChannel.ROLLOUT)
    try:
        failures = [
            (rollout, feed.rollout(f"bad-{i:03d}", "2", "rejected", "no")) for i in range(100)
        ]
        publish_all(device, failures)
        wait_for(lambda: monitor.stats()["received_total"] >= 100, 15)
        assert monitor.wait_idle(15)
        reports = [
            (
                tele("inventor"),
                _report_with_models("inventor", r, [f"m-{r}-{i}" for i in range(500)]),
            )
            for r in range(1, 21)
        ]
        publish_all(device, [*reports, (tele("honest"), feed.telemetry("honest", 1))])
        wait_for(lambda: monitor.stats()["received_total"] >= 121, 30)
        assert monitor.wait_idle(15)
        names = "SELECT COUNT(*) AS n FROM device_model_names WHERE device_id = 'inventor'"
        assert count(monitor, names) == 64
        load = "SELECT COUNT(DISTINCT model) AS n FROM model_load WHERE device_id = 'inventor'"
        assert count(monitor, load) == 0  # the 64 names went to the first rollout failures
        events = "SELECT COUNT(DISTINCT model) AS n FROM events WHERE device_id = 'inventor'"
        assert count(monitor, events) == 64
        assert monitor.stats()["capped"] == 36 + 20 * 500
        assert count(monitor, "SELECT COUNT(*) AS n FROM model_load WHERE device_id = 'honest'")
        changes = monitor.evaluate_alerts()
        opened = [c for c in changes if c["device_id"] == "inventor"]
        assert len(opened) == 16
        assert monitor.alerts is not None and monitor.alerts.capped == 64 - 16
        series = [
            line
            for line in monitor.metrics_text().decode().splitlines()
            if line and not line.startswith("#")
        ]
        assert len(series) < 100
    finally:
        monitor.stop()


def test_a_flood_of_invented_device_ids_keeps_devices_and_alerts_bounded(
    mosquitto: Broker, device: MqttClient, database: Database
) -> None:
    """Regression (issue 12 soak): every invented device id whose status decoded got a device
    row and, once silent, an offline alert (203 in 30 minutes), with no bound. Now the store
    holds at most ``max_devices`` ids; messages from further ids are dead letters
    (``device_limit``), one fleet-wide alert says so, and known devices keep being stored."""
    config = settings("q-invented", device_rate_per_s=None)
    config.max_devices = 20
    later = {"now": 0.0}
    monitor = Monitor(
        database.url, mosquitto.url, config, clock=lambda: time.time() + later["now"]
    ).start()
    status_topic = topics.device_topic
    try:
        known = [f"known-{d}" for d in range(3)]
        publish_all(
            device, [(status_topic(d, DeviceChannel.STATUS), feed.status(d)) for d in known]
        )
        wait_for(lambda: monitor.stats()["received_total"] >= 3, 15)
        assert monitor.wait_idle(15)
        invented = [f"invented-{i:04d}" for i in range(300)]
        flood = [(status_topic(d, DeviceChannel.STATUS), feed.status(d)) for d in invented]
        flood += [(tele(d), feed.telemetry(d, 1)) for d in invented[:100]]
        calm = [(tele(d), feed.telemetry(d, i)) for d in known for i in (1, 2)]
        publish_all(device, flood[:200] + calm + flood[200:])
        total = 3 + len(flood) + len(calm)
        wait_for(lambda: monitor.stats()["received_total"] >= total, 30)
        assert monitor.wait_idle(15)
        assert count(monitor, "SELECT COUNT(*) AS n FROM devices") == 20
        assert (
            count(
                monitor,
                "SELECT COUNT(*) AS n FROM telemetry WHERE substr(device_id, 1, 6) = 'known-'",
            )
            == 6
        )
        stored = count(
            monitor, "SELECT COUNT(*) AS n FROM devices WHERE substr(device_id, 1, 9) = 'invented-'"
        )
        assert stored == 17
        stats = monitor.stats()
        assert stats["quarantined"]["device_limit"] == len(flood) - stored - count(
            monitor,
            "SELECT COUNT(*) AS n FROM telemetry WHERE substr(device_id, 1, 9) = 'invented-'",
        )
        assert recent_dead_letters(monitor.store)["by_reason"]["device_limit"] > 0
        # a known device is still ingested after the limit is reached
        publish_all(device, [(tele("known-0"), feed.telemetry("known-0", 3))])
        wait_for(lambda: monitor.stats()["received_total"] >= total + 1, 15)
        assert monitor.wait_idle(15)
        assert (
            count(monitor, "SELECT COUNT(*) AS n FROM telemetry WHERE device_id = 'known-0'") == 3
        )
        later["now"] = 3600.0  # every device has gone silent an hour ago
        changes = monitor.evaluate_alerts()
        rules = sorted(c["rule"] for c in changes)
        assert rules.count("device_offline") == 20
        assert rules.count("device_limit") == 1 and len(rules) == 21
    finally:
        monitor.stop()


def test_a_dead_letter_carrying_markup_is_shown_as_text_on_the_dashboard(
    mosquitto: Broker, device: MqttClient, tmp_path: Any
) -> None:
    """The dashboard lists dead letters; a preview is device-chosen bytes, so it must reach
    the operator's browser as text, never as markup (real Chromium)."""
    from pathlib import Path

    from playwright.sync_api import expect, sync_playwright

    from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    config = settings("q-page")
    config.http = "127.0.0.1:0"
    monitor = Monitor(f"sqlite://{tmp_path / 'monitor.db'}", mosquitto.url, config).start()
    try:
        markup = b"<img src=x onerror=\"document.title='owned'\"><b id=injected>x</b>"
        publish_all(device, [(tele("mallory"), markup), (tele("fine"), feed.telemetry("fine", 1))])
        wait_for(lambda: recent_dead_letters(monitor.store)["total"] == 1, 15)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(monitor.url + "/")
                row = page.locator("#dead-letters tr[data-reason='not_json']")
                expect(row).to_be_visible(timeout=15000)
                expect(row).to_contain_text("mallory")
                expect(row).to_contain_text("<b id=injected>")
                expect(page.locator("#injected")).to_have_count(0)
                assert page.title() != "owned"
                page.screenshot(path=str(tmp_path / "dead-letters.png"), full_page=True)
            finally:
                browser.close()
    finally:
        monitor.stop()


def test_a_postgresql_restart_does_not_wedge_ingest_or_the_dashboard(
    mosquitto: Broker, device: MqttClient, postgres: Postgres
) -> None:
    """Regression: the monitor kept its PostgreSQL connections after the server restarted, so
    every later batch failed and was retried forever, and every dashboard query failed, until
    the monitor itself was restarted. Now the writer and the readers reconnect."""
    url = postgres.create_database("restart")
    monitor = Monitor(url, mosquitto.url, settings("q-restart")).start()
    try:
        publish_all(device, [(tele("cam"), feed.telemetry("cam", i)) for i in range(1, 6)])
        wait_for(lambda: count(monitor, "SELECT COUNT(*) AS n FROM telemetry") == 5, 15)
        postgres.restart()
        publish_all(device, [(tele("cam"), feed.telemetry("cam", i)) for i in range(6, 11)])
        wait_for(lambda: monitor.stats()["received_total"] >= 10, 15)
        wait_for(lambda: count(monitor, "SELECT COUNT(*) AS n FROM telemetry") == 10, 30)
        assert monitor.stats()["quarantined_total"] == 0
        assert monitor.fleet()["devices"][0]["device_id"] == "cam"
    finally:
        monitor.stop()
