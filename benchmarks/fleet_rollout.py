"""A staged rollout of a 1 MB model to 1,000 simulated devices in 3 waves, measured.

Everything runs on this machine against one private Mosquitto: the registry as its own process
(`edge-agent registry serve`, so its CPU is measured alone from /proc), the monitor (SQLite) and
the rollout controller in this process, and the simulator's devices (real MQTT identities,
``--devices-per-connection`` ids per connection; real TUF trust states: ``--independent``
devices each refresh, verify the signed rollout document and download + verify the model
themselves through the registry, the others share one trust state per ``--trust-group-size``).

Prints JSON: time from `rollout create` to 99 % (and 100 %) of the devices active on the new
release, per-wave opening times, registry CPU seconds during the rollout (and its idle CPU over
the same span as the in-run baseline), messages published by the fleet, real TUF work done,
and a plain statement of what was real and what was shared.

    .venv/bin/python benchmarks/fleet_rollout.py [--devices 1000] [--independent N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.delivery import make_package  # noqa: E402
from edge_agent.config import FetchSettings  # noqa: E402
from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings  # noqa: E402
from edge_agent.fleet.rollout import GateThresholds, RolloutController, partition  # noqa: E402
from edge_agent.fleet.rollout.health import MonitorHealth  # noqa: E402
from edge_agent.fleet.simulator import FleetSimulator, SimulatorSettings  # noqa: E402
from edge_agent.trust.operator.publish import add_model  # noqa: E402
from edge_agent.trust.operator.repository import OperatorRepository  # noqa: E402
from tests.fixtures.mosquitto import start_broker  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--waves", default="5,25,100")
    parser.add_argument(
        "--independent",
        type=int,
        default=None,
        help="Devices with their own TUF trust state and download [default: all].",
    )
    parser.add_argument("--trust-group-size", type=int, default=50)
    parser.add_argument("--devices-per-connection", type=int, default=10)
    parser.add_argument("--report-interval", type=float, default=5.0)
    parser.add_argument("--soak", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=170.0)
    args = parser.parse_args()
    waves = [float(w) for w in args.waves.split(",")]

    with tempfile.TemporaryDirectory(prefix="fleet-rollout-") as tmp:
        work = Path(tmp)
        broker = start_broker(work / "broker")
        registry = None
        try:
            repo = OperatorRepository.init(work / "repo")
            add_model(repo, make_package(work, 4096))  # release 1: what devices run
            size = int(args.size_mb * 1024 * 1024)
            new = add_model(repo, make_package(work, size))  # release 2: the rollout
            command = [sys.executable, "-c", "from edge_agent.cli import main; main()"]
            registry = subprocess.Popen(
                [
                    *command,
                    "registry",
                    "serve",
                    "--repo",
                    str(work / "repo"),
                    "--broker",
                    broker.url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            ingest = IngestSettings(client_id=f"bench-{uuid.uuid4().hex[:6]}", group=None)
            monitor_settings = MonitorSettings(
                http=None, alert_interval_s=3600, mqtt_alerts=False, ingest=ingest
            )
            settings = SimulatorSettings(
                devices=args.devices,
                model="big",
                group="bench",
                initial_release=1,
                devices_per_connection=args.devices_per_connection,
                independent=args.independent,
                trust_group_size=args.trust_group_size,
                report_interval_s=args.report_interval,
                inferences_per_report=20,
                check_interval_s=60,
                update_workers=8,
                fetch=FetchSettings(chunk_bytes=256 * 1024, window=4, chunk_timeout_s=5.0),
            )
            root_json = work / "repo" / "metadata" / "1.root.json"
            db_url = f"sqlite:///{work / 'monitor.db'}"
            with (
                Monitor(db_url, broker.url, monitor_settings) as mon,
                FleetSimulator(broker.url, root_json, work / "sim", settings) as sim,
            ):
                while sim.rounds < 1:  # the start-up refresh of every trust state
                    time.sleep(0.2)
                time.sleep(2 * args.report_interval)  # baseline data for release 1
                ids = [d.device_id for d in sim.devices]
                gates = GateThresholds(
                    soak_s=args.soak,
                    min_coverage=0.99,
                    min_inferences=100,
                    wave_timeout_s=args.timeout,
                    window_s=60,
                    max_latency_ratio=2.0,
                )
                controller = RolloutController(repo, work / "rollouts.json", MonitorHealth(mon))
                idle_start = cpu_seconds(registry.pid)
                time.sleep(3.0)
                idle_cpu_per_s = (cpu_seconds(registry.pid) - idle_start) / 3.0
                messages_before = sum(sim.published.values())
                cpu_before = cpu_seconds(registry.pid)
                started = time.monotonic()
                controller.create("bench", "big", new.release, ids, waves=waves,
                                      thresholds=gates)  # fmt: skip
                sim.wake()
                result: dict[str, object] = {}
                follower = threading.Thread(
                    target=lambda: result.update(record=controller.follow("bench", poll_s=1.0)),
                    daemon=True,
                )
                follower.start()
                t99 = t100 = None
                deadline = started + args.timeout
                while time.monotonic() < deadline:
                    active = sim.active_counts().get(new.release, 0)
                    now = time.monotonic() - started
                    if t99 is None and active >= 0.99 * len(ids):
                        t99 = now
                    if active == len(ids):
                        t100 = now
                        break
                    time.sleep(0.1)
                elapsed = time.monotonic() - started
                registry_cpu = cpu_seconds(registry.pid) - cpu_before
                follower.join(30)
                record = controller.get("bench")
                assert record is not None
                stats = sim.stats()
                wave_sizes = [len(w) for w in partition(ids, waves, "bench")]
        finally:
            if registry is not None:
                registry.terminate()
                registry.wait(10)
            broker.stop()
    print(
        json.dumps(
            {
                "devices": args.devices,
                "model_bytes": size,
                "waves": waves,
                "wave_sizes": wave_sizes,
                "soak_s_per_wave": args.soak,
                "time_to_99pct_active_s": None if t99 is None else round(t99, 2),
                "time_to_100pct_active_s": None if t100 is None else round(t100, 2),
                "wave_opened_after_s": [round(t - record.opened[0], 2) for t in record.opened],
                "rollout_status": record.status,
                "rollout_reason": record.reason,
                "gate_floor_s": args.soak * (len(waves) - 1),
                "time_to_99pct_minus_gate_floor_s": None
                if t99 is None
                else round(t99 - args.soak * (len(waves) - 1), 2),
                "registry_cpu_s": round(registry_cpu, 2),
                "registry_idle_cpu_s_same_span": round(idle_cpu_per_s * elapsed, 2),
                "fleet_messages_during_rollout": sum(sim.published.values()) - messages_before,
                "fleet": stats,
                "real": (
                    f"{stats['connections']} MQTT connections carrying {args.devices} device "
                    f"ids; {stats['trust_groups']} TUF trust states "
                    f"({stats['independent_devices']} of a single device, the others shared by "
                    f"up to {args.trust_group_size} devices), each refreshing metadata through "
                    "the registry process, verifying the signed rollout document and "
                    "downloading + verifying the model itself; monitor ingest on SQLite; the "
                    "controller gates on the monitor's data"
                ),
                "shared": (
                    "devices in a shared trust state use its verified metadata and its one "
                    "download; inference is synthetic; model slots are in memory"
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
