"""Alerts end to end: rules on real stored data, delivery to a real local HTTP server (which
fails at first, so the retries with backoff are exercised) and to the MQTT alerts topic."""

from __future__ import annotations

import json
import queue
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_agent.fleet.monitor import AlertRules, IngestSettings, Monitor, MonitorSettings
from edge_agent.fleet.monitor.delivery import WebhookSink
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fixtures.mosquitto import Broker, free_port
from tests.fixtures.wait import wait_for


class Receiver:
    """A webhook receiver that answers 503 to the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if outer.attempts <= outer.fail_first:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.received.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def test_webhook_retries_with_backoff_until_delivered(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, attempts=5, first_backoff_s=0.05)
    try:
        sink({"key": "battery_low:x", "state": "firing", "message": "battery low on x"})
        alert = receiver.received.get(timeout=10)
        assert alert["key"] == "battery_low:x"
        assert receiver.attempts == 3
        sink.close()
        assert sink.stats.retries == 2 and sink.stats.delivered == 1
    finally:
        sink.close()


def test_webhook_gives_up_on_a_dead_endpoint_and_counts_it() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/", attempts=3, first_backoff_s=0.01)
    sink({"key": "k"})
    sink.close(timeout_s=10)
    assert sink.stats.failed == 1 and sink.stats.retries == 2 and sink.stats.delivered == 0


def test_rules_fire_and_resolve_through_webhook_and_mqtt(
    mosquitto: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    rules = AlertRules(
        latency_slo_ms=10.0, battery_low_pct=20.0, overheat_c=85.0, offline_after_s=0.0
    )
    settings = MonitorSettings(
        http="127.0.0.1:0",
        alert_interval_s=3600,
        webhook_url=receiver.url,
        rules=rules,
        ingest=IngestSettings(client_id="alert-monitor"),
    )
    monitor = Monitor(str(tmp_path / "m.db"), mosquitto.url, settings).start()
    monitor.webhook.delays = [0.05] * 10  # type: ignore[union-attr]
    device = MqttClient(mosquitto.url, "alert-device")
    device.connect()
    watcher = MqttClient(mosquitto.url, "alert-watcher")
    watcher.connect()
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    assert watcher.subscribe(topics.monitor_alerts(), lambda m: seen.put(json.loads(m.payload)))
    try:
        t = lambda c: topics.device_topic("hot-1", c)  # noqa: E731
        infos = [device.publish(t(DeviceChannel.STATUS), feed.status("hot-1"), retain=True)]
        infos += [
            device.publish(
                t(DeviceChannel.TELEMETRY),
                feed.telemetry(
                    "hot-1", i, battery_pct=9.0, temp_c=91.5, latencies_ms=[30.0, 40.0, 50.0]
                ),
            )
            for i in range(1, 4)
        ]
        infos += [
            device.publish(t(DeviceChannel.DRIFT), m) for m in feed.drift_messages("digits", 3.0)
        ]
        infos.append(
            device.publish(
                t(DeviceChannel.ROLLOUT),
                feed.rollout(
                    "digits", "2", "rolled_back", "error rate 0.3 > 0.01 after activation"
                ),
            )
        )
        for info in infos:
            info.wait_for_publish(10)
        received = lambda: monitor.stats()["received_total"]  # noqa: E731
        wait_for(lambda: received() >= len(infos), 10, "the monitor to receive every message")
        assert monitor.wait_idle(10)
        changes = monitor.evaluate_alerts()
        rules_fired = sorted(c["rule"] for c in changes)
        assert rules_fired == [
            "battery_low",
            "drift_alarm",
            "latency_slo",
            "overheating",
            "rollout_failure",
        ]
        assert monitor.evaluate_alerts() == []  # firing alerts are not delivered again

        hooked = [receiver.received.get(timeout=15) for _ in range(5)]
        assert sorted(a["rule"] for a in hooked) == rules_fired
        battery = next(a for a in hooked if a["rule"] == "battery_low")
        assert battery["message"] == "battery low on hot-1: 9% (< 20%)"
        on_mqtt = [seen.get(timeout=10) for _ in range(5)]
        assert sorted(a["rule"] for a in on_mqtt) == rules_fired

        # the device goes away: offline fires; its sensors recover: battery resolves
        device.publish(
            t(DeviceChannel.TELEMETRY),
            feed.telemetry("hot-1", 9, battery_pct=70.0, temp_c=91.5, latencies_ms=[30.0]),
        ).wait_for_publish(10)
        device.publish(
            t(DeviceChannel.STATUS), feed.last_will("hot-1"), retain=True
        ).wait_for_publish(10)
        wait_for(lambda: received() >= len(infos) + 2, 10, "the monitor to receive both")
        assert monitor.wait_idle(10)
        changes = monitor.evaluate_alerts()
        states = sorted((c["rule"], c["state"]) for c in changes)
        assert states == [("battery_low", "resolved"), ("device_offline", "firing")]

        with urllib.request.urlopen(f"{monitor.url}/api/alerts") as response:
            alerts = json.load(response)["alerts"]
        assert {a["rule"] for a in alerts if a["state"] == "firing"} == {
            "drift_alarm",
            "latency_slo",
            "overheating",
            "rollout_failure",
            "device_offline",
        }
        with urllib.request.urlopen(f"{monitor.url}/metrics") as response:
            metrics = response.read().decode()
        assert 'edge_monitor_alerts_firing{rule="overheating"} 1.0' in metrics
    finally:
        watcher.close()
        device.close()
        monitor.stop()


def test_two_instances_deliver_each_alert_once(
    mosquitto: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    """Two monitors on one database: the alert row decides who delivers."""
    db = str(tmp_path / "shared.db")
    got: list[list[dict[str, Any]]] = [[], []]
    monitors = [
        Monitor(
            db,
            mosquitto.url,
            MonitorSettings(
                http=None,
                alert_interval_s=3600,
                mqtt_alerts=False,
                ingest=IngestSettings(client_id=f"m{i}"),
            ),
            extra_sinks=[got[i].append],
        ).start()
        for i in range(2)
    ]
    device = MqttClient(mosquitto.url, "d")
    device.connect()
    try:
        device.publish(
            topics.device_topic("b-1", DeviceChannel.TELEMETRY),
            feed.telemetry("b-1", 1, battery_pct=3.0),
        ).wait_for_publish(10)
        wait_for(lambda: monitors[0].store.rows("SELECT 1 FROM telemetry"), 10, "telemetry stored")
        for m in monitors:
            m.evaluate_alerts()
        assert len(got[0]) + len(got[1]) == 1
    finally:
        device.close()
        for m in monitors:
            m.stop()
