"""Monitor ingest: 1,000 simulated devices through the tuned Mosquitto into one monitor.

Setup: a private Mosquitto started with the delivery settings of deploy/mosquitto.conf
(max_inflight_messages, max_queued_messages, message_size_limit; no TLS/ACL, loopback), one
:class:`Monitor` (SQLite file in WAL mode, then a private PostgreSQL server started with
initdb/pg_ctl), and publisher processes that multiplex the 1,000 device ids over a few real MQTT
connections (``--connections``, default 4, in 2 processes): each message is a real telemetry
envelope (``AgentTelemetry.report`` shape with a DDSketch, ~1.9 KB) published with QoS 1 on that
device's own topic ``ea/v1/<device>/telemetry``.

Phases per backend:

* ``realtime``: every device reports once per second for ``--seconds`` (1,000 msg/s offered);
  the monitor must store every record (published vs stored) and keep its lag small.
* ``saturation``: the devices publish ``--burst`` reports as fast as the publishers can; the
  sustained ingest rate is stored records / (last store - first store), and again no record
  may be lost (the broker queues what the monitor has not acknowledged).

The ``baseline`` in the same run is the broker alone: a plain subscriber that only counts the
same messages (QoS 1), i.e. the ceiling of this machine without parsing or storage.

Usage: python benchmarks/monitor_ingest.py [--seconds 15] [--burst 40000] [--no-postgres].
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.demo.broker import Mosquitto  # noqa: E402
from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings  # noqa: E402
from edge_agent.transport import topics  # noqa: E402
from edge_agent.transport.topics import DeviceChannel  # noqa: E402
from tests.fixtures.postgres import start_postgres  # noqa: E402

TUNED_KEYS = (
    "max_inflight_messages",
    "max_queued_messages",
    "max_queued_bytes",
    "message_size_limit",
)


def start_broker(workdir: Path) -> tuple[Mosquitto, list[str]]:
    """Mosquitto with the tuned delivery lines of deploy/mosquitto.conf (they come last, so
    they are the ones in force)."""
    tuned = [
        line.strip()
        for line in (REPO / "deploy" / "mosquitto.conf").read_text().splitlines()
        if line.strip().split(" ")[0] in TUNED_KEYS
    ]
    return Mosquitto(workdir, extra_config="\n".join(tuned) + "\n"), tuned


# -- publishers (separate processes) ---------------------------------------------------------


def _template(device: str) -> bytes:
    """The ``data`` of a real telemetry report for ``device`` (built once per device)."""
    from tests.fakes import fleet_feed

    envelope = json.loads(fleet_feed.telemetry(device, 1, latencies_ms=[3.0, 4.0, 5.0, 9.0]))
    return json.dumps(envelope["data"], separators=(",", ":")).encode()


def publisher(
    port: int,
    devices: list[str],
    connections: int,
    rate_hz: float,
    reports: int,
    start_at: float,
    outbox: str,
    result: Any,
) -> None:
    """Publish ``reports`` reports per device (at ``rate_hz`` per device, 0: flat out)."""
    from edge_agent.telemetry.outbox import Priority, Record
    from edge_agent.transport.client import MqttClient

    templates = {d: _template(d) for d in devices}
    topic = {d: topics.device_topic(d, DeviceChannel.TELEMETRY) for d in devices}
    clients = []
    for i in range(connections):
        client = MqttClient(f"mqtt://127.0.0.1:{port}", f"{outbox}-pub-{i}", max_inflight=1000)
        client.connect()
        clients.append(client)
    while time.time() < start_at:
        time.sleep(0.001)
    published = 0
    pending: list[Any] = []
    began = time.time()
    for seq in range(1, reports + 1):
        if rate_hz:
            due = start_at + (seq - 1) / rate_hz
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        for index, device in enumerate(devices):
            record = Record(
                seq,
                f"{outbox}{index}-{seq}",
                Priority.TELEMETRY,
                DeviceChannel.TELEMETRY,
                time.time(),
                templates[device],
            )
            pending.append(clients[index % connections].publish(topic[device], record.envelope()))
            published += 1
        if len(pending) > 20000:
            for info in pending:
                info.wait_for_publish(60)
            pending.clear()
    for info in pending:
        info.wait_for_publish(60)
    elapsed = time.time() - began
    acked = published  # every wait_for_publish returned: PUBACKed by the broker
    for client in clients:
        client.close()
    result.put({"published": published, "acked": acked, "seconds": elapsed})


def run_publishers(
    port: int,
    devices: int,
    processes: int,
    connections: int,
    rate_hz: float,
    reports: int,
    tag: str,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    result: Any = ctx.Queue()
    ids = [f"dev-{i:04d}" for i in range(devices)]
    start_at = time.time() + 4.0  # time for the processes to build templates and connect
    procs = [
        ctx.Process(
            target=publisher,
            args=(
                port,
                ids[p::processes],
                max(connections // processes, 1),
                rate_hz,
                reports,
                start_at,
                f"{tag}{p}x",
                result,
            ),
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [result.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(30)
    return {
        "published": sum(r["published"] for r in results),
        "acked": sum(r["acked"] for r in results),
        "publish_seconds": max(r["seconds"] for r in results),
        "start_at": start_at,
    }


# -- measurement -----------------------------------------------------------------------------


def watch_store(monitor: Monitor, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    while not stop.is_set():
        samples.append((time.time(), monitor.ingestor.stats.stored if monitor.ingestor else 0))
        stop.wait(0.1)


def phase(
    monitor: Monitor, port: int, args: argparse.Namespace, rate_hz: float, reports: int, tag: str
) -> dict[str, Any]:
    before = monitor.ingestor.stats.stored if monitor.ingestor else 0
    dups_before = monitor.ingestor.stats.duplicates if monitor.ingestor else 0
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_store, args=(monitor, stop, samples), daemon=True)
    watcher.start()
    pub = run_publishers(
        port, args.devices, args.processes, args.connections, rate_hz, reports, tag
    )
    expected = before + pub["published"]
    deadline = time.time() + 120
    while time.time() < deadline:
        assert monitor.ingestor is not None
        if monitor.ingestor.stats.stored >= expected and monitor.wait_idle(0.1):
            break
        time.sleep(0.1)
    stop.set()
    watcher.join()
    stored_now = monitor.ingestor.stats.stored if monitor.ingestor else 0
    stored = stored_now - before
    moving = [(t, n) for t, n in samples if n > before]
    first = moving[0][0] if moving else time.time()
    done = next((t for t, n in samples if n >= expected), time.time())
    duration = max(done - first, 1e-6)
    return {
        "offered_rate_per_s": round(args.devices * rate_hz) if rate_hz else "max",
        "published": pub["published"],
        "acked_by_broker": pub["acked"],
        "stored": stored,
        "lost": pub["published"] - stored,
        "duplicates_dropped": (monitor.ingestor.stats.duplicates if monitor.ingestor else 0)
        - dups_before,
        "publish_seconds": round(pub["publish_seconds"], 2),
        "publish_rate_per_s": round(pub["published"] / pub["publish_seconds"]),
        "ingest_rate_per_s": round(stored / duration),
        "drain_after_publish_s": round(
            max(done - (pub["start_at"] + pub["publish_seconds"]), 0), 2
        ),
    }


def bench_backend(name: str, db_url: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """One monitor on ``db_url``, in its own shared-subscription group: the previous backend's
    stopped monitor keeps a persistent session in its group, and Mosquitto keeps queueing that
    member's share for it (see docs/scale.md)."""
    settings = MonitorSettings(
        http=None,
        alert_interval_s=3600,
        mqtt_alerts=False,
        ingest=IngestSettings(client_id=f"bench-{name}", group=f"bench-{name}"),
    )
    monitor = Monitor(db_url, f"mqtt://127.0.0.1:{port}", settings).start()
    try:
        realtime = phase(monitor, port, args, 1.0, args.seconds, f"{name}rt")
        per_device = max(args.burst // args.devices, 1)
        saturation = phase(monitor, port, args, 0.0, per_device, f"{name}sat")
        rows = monitor.store.rows("SELECT COUNT(*) AS n FROM telemetry")[0]["n"]
        return {
            "realtime": realtime,
            "saturation": saturation,
            "rows_in_db": int(rows),
            "batches": monitor.ingestor.stats.batches if monitor.ingestor else 0,
        }
    finally:
        monitor.stop()


def baseline(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """The broker alone: a plain QoS 1 subscriber counting the saturation phase's messages."""
    from edge_agent.transport.client import MqttClient

    count = [0]
    times: list[float] = []

    def on_message(_m: Any) -> None:
        count[0] += 1
        if count[0] == 1:
            times.append(time.time())

    sub = MqttClient(f"mqtt://127.0.0.1:{port}", "bench-baseline", max_inflight=1000)
    sub.connect()
    sub.subscribe(topics.all_devices(DeviceChannel.TELEMETRY), on_message)
    time.sleep(0.5)
    per_device = max(args.burst // args.devices, 1)
    pub = run_publishers(
        port, args.devices, args.processes, args.connections, 0.0, per_device, "base"
    )
    deadline = time.time() + 60
    while count[0] < pub["published"] and time.time() < deadline:
        time.sleep(0.05)
    end = time.time()
    sub.close()
    return {
        "published": pub["published"],
        "received": count[0],
        "receive_rate_per_s": round(count[0] / max(end - times[0], 1e-6)) if times else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=15, help="realtime phase length")
    parser.add_argument("--burst", type=int, default=40000, help="saturation phase messages")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ea-bench-monitor-"))
    broker, tuned = start_broker(work)
    port = broker.port
    out: dict[str, Any] = {
        "benchmark": "monitor_ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "devices": args.devices,
        "transport": f"{args.devices} device ids multiplexed over {args.connections} MQTT "
        f"connections in {args.processes} publisher processes, QoS 1",
        "broker_tuning": tuned,
    }
    try:
        out["baseline_broker_only"] = baseline(port, args)
        out["sqlite"] = bench_backend("sqlite", f"sqlite:///{work / 'monitor.db'}", port, args)
        if not args.no_postgres:
            server = start_postgres(durable=True)  # fsync on, as in production
            try:
                out["postgresql"] = bench_backend("pg", server.url(), port, args)
            finally:
                server.stop()
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
