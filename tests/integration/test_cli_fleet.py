"""`edge-agent fleet simulate` end to end: real Mosquitto, a signed repository, the command line."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

from click.testing import CliRunner

from edge_agent.cli import cli
from tests.fakes.delivery_env import delivery_env
from tests.fixtures.mosquitto import Broker


def test_fleet_simulate_runs_devices_and_prints_their_statistics(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """The simulate command (its own module since fleet_cmd.py was split) is still attached to
    `fleet`, runs the devices for --duration and leaves the caller's signal handlers alone."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with delivery_env(tmp_path, mosquitto.url) as env:
        result = CliRunner().invoke(
            cli,
            [
                "fleet",
                "simulate",
                "--broker",
                mosquitto.url,
                "--root",
                str(env.root_json),
                "--devices",
                "3",
                "--prefix",
                f"c{uuid.uuid4().hex[:5]}",
                "--initial-release",
                "1",
                "--report-interval",
                "0.2",
                "--duration",
                "1.5",
                "--workdir",
                str(tmp_path / "sim"),
                "--battery-fraction",
                "0.34",
                "--time-scale",
                "600",
                "--start-hour",
                "12",
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["devices"] == 3
    assert stats["active"] == {"1": 3}
    assert stats["messages_total"] >= 3  # at least every device's retained status
    assert stats["battery_devices"] == 1  # 0.34 of 3, spread: one device on a battery
    assert stats["saving"] == []  # noon: the sun charges it
    assert {s: signal.getsignal(s) for s in before} == before
