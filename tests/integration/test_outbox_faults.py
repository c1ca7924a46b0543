"""The outbox against real faults: kill -9 of a real process, a real Mosquitto going away.

* kill -9 while writing: every record whose enqueue returned (the child printed its id after
  the call) is in the file afterwards, and the file passes SQLite's integrity check;
* kill -9 while draining: nothing is lost (each record was either received by the monitor or
  is still queued), and a fresh publisher finishes the job;
* broker outage: 100 000 records queued while the broker is down drain completely, in order,
  after it comes back, and an alarm raised mid-drain overtakes the backlog.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from edge_agent.telemetry.outbox import Outbox, Priority
from edge_agent.telemetry.publisher import OutboxPublisher
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel, all_devices, device_topic
from tests.fixtures.mosquitto import Broker

REPO = Path(__file__).resolve().parents[2]
T = DeviceChannel.TELEMETRY

WRITER = textwrap.dedent("""
    import sys
    from edge_agent.telemetry.outbox import Outbox, Priority
    from edge_agent.transport.topics import DeviceChannel
    box = Outbox(sys.argv[1], synchronous=sys.argv[2])
    i = 0
    while True:
        payload = {"i": i, "pad": "x" * 200}
        result = box.enqueue(DeviceChannel.TELEMETRY, Priority.TELEMETRY, payload)
        print(result.record_id, flush=True)
        i += 1
""")

DRAINER = textwrap.dedent("""
    import sys, time
    from edge_agent.telemetry.outbox import Outbox
    from edge_agent.telemetry.publisher import OutboxPublisher
    from edge_agent.transport.client import MqttClient
    box = Outbox(sys.argv[1])
    client = MqttClient(sys.argv[2], "dev1-child")
    client.connect()
    OutboxPublisher(box, "dev1", client).start()
    print("draining", flush=True)
    time.sleep(600)
""")


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def kill9(process: subprocess.Popen[str]) -> str:
    os.kill(process.pid, signal.SIGKILL)
    assert process.stdout is not None
    rest = process.stdout.read()  # not communicate(): it skips what readline() buffered
    process.stdout.close()
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    return rest


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_kill9_while_writing_keeps_every_acknowledged_record(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "outbox.db"
    child = spawn(WRITER, str(path), synchronous)
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip() for _ in range(300)]
    acknowledged += [line for line in kill9(child).splitlines() if line.strip()]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Outbox(path) as box:
        stored = {r.record_id for r in box.peek(1_000_000)}
    assert set(acknowledged) <= stored
    assert len(stored) - len(acknowledged) <= 1  # at most the one committed as it died


class Monitor:
    """Collects record ids from the broker, first occurrence order kept."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        envelope = json.loads(message.payload)
        with self.lock:
            if envelope["id"] not in self.seen:
                self.seen.add(envelope["id"])
                self.ids.append(envelope["id"])

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)


def seq(record_id: str) -> int:
    return int(record_id.rsplit("-", 1)[1])


def test_kill9_while_draining_loses_nothing(tmp_path: Path, mosquitto: Broker) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        results = box.enqueue_many([(T, Priority.TELEMETRY, {"i": i}) for i in range(5000)])
    every = {r.record_id for r in results}
    monitor = Monitor()
    with MqttClient(mosquitto.url, "monitor") as watcher:
        watcher.connect()
        watcher.subscribe(all_devices(T), monitor)
        child = spawn(DRAINER, str(path), mosquitto.url)
        assert child.stdout is not None and child.stdout.readline().strip() == "draining"
        monitor.wait_for(1000, timeout=30)
        kill9(child)
        with Outbox(path) as box:
            remaining = {r.record_id for r in box.peek(1_000_000)}
            assert len(remaining) < 5000, "the child drained nothing before the kill"
            # records the broker acknowledged may still be on their way to the monitor
            deadline = time.monotonic() + 10
            while not every <= monitor.seen | remaining and time.monotonic() < deadline:
                time.sleep(0.05)
            assert every <= monitor.seen | remaining  # nothing lost
            with MqttClient(mosquitto.url, "dev1") as client:
                client.connect()
                publisher = OutboxPublisher(box, "dev1", client)
                publisher.start()
                deadline = time.monotonic() + 60
                while len(box) and time.monotonic() < deadline:
                    time.sleep(0.05)  # includes records the child sent but never saw acked
                monitor.wait_for(5000, timeout=10)
                publisher.stop()
            assert len(box) == 0
    assert monitor.seen == every
    assert [seq(i) for i in monitor.ids] == sorted(seq(i) for i in monitor.ids)


def test_broker_outage_with_100k_records_drains_in_order(tmp_path: Path, mosquitto: Broker) -> None:
    """The device's own client subscribes to its topics, so the subscription is back (it is
    restored before anything is republished) whenever the drain starts: no race. The drain
    time includes paho's reconnect backoff (1 s, doubling, while the broker was down)."""
    monitor = Monitor()
    alarm_ids: list[str] = []
    with Outbox(tmp_path / "outbox.db") as box, MqttClient(mosquitto.url, "dev1") as client:
        # QoS 0 for the echo: it rides the same TCP connection, and a QoS 1 echo makes the
        # device's client ack 100k incoming messages on its own network thread (5x slower)
        client.subscribe(device_topic("dev1", T), monitor, qos=0)
        client.subscribe(device_topic("dev1", DeviceChannel.DRIFT), monitor, qos=0)
        client.connect()
        publisher = OutboxPublisher(box, "dev1", client)
        publisher.start()
        live = box.enqueue(T, Priority.TELEMETRY, {"live": True})
        monitor.wait_for(1, timeout=10)
        assert monitor.ids == [live.record_id]

        mosquitto.stop()  # the outage
        deadline = time.monotonic() + 10
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.connected
        queued = []
        for start in range(0, 100_000, 1000):
            queued += box.enqueue_many(
                [(T, Priority.TELEMETRY, {"i": i}) for i in range(start, start + 1000)]
            )
        assert len(box) == 100_000

        mosquitto.restart()
        started = time.monotonic()
        monitor.wait_for(10_000, timeout=60)
        alarm_ids.append(
            box.enqueue(DeviceChannel.DRIFT, Priority.ALARM, {"alarm": "input drift"}).record_id
        )
        monitor.wait_for(100_002, timeout=240)
        drain_s = time.monotonic() - started
        publisher.stop()
        assert len(box) == 0
    print(
        f"\n100k records drained in {drain_s:.1f} s after the broker came back "
        f"({publisher.republished} republished)"
    )
    telemetry = [i for i in monitor.ids if i not in alarm_ids]
    assert set(telemetry) == {live.record_id} | {r.record_id for r in queued}
    assert [seq(i) for i in telemetry] == sorted(seq(i) for i in telemetry)
    alarm_position = monitor.ids.index(alarm_ids[0])
    assert alarm_position < 100_000 - 1000, "the alarm waited behind the backlog"
