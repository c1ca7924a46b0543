"""`edge-agent fleet simulate`: many light simulated agents in one process, for tests.

The command is attached to the ``fleet`` group by :mod:`edge_agent.cli.fleet_cmd`; the
simulator itself (:mod:`edge_agent.fleet.simulator`) is imported only when the command runs.
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import click

from edge_agent.cli import _params
from edge_agent.cli._broker import broker_options
from edge_agent.config import BrokerSettings


def credential_files(directory: Path, device_ids: list[str]) -> dict[str, Path]:
    """Each device's password file in ``directory``; a usage error naming those missing.

    Two layouts are read: ``DIR/DEVICE_ID.pw`` (what the demo and the secured-broker fixture
    write, one file per broker user) and ``DIR/DEVICE_ID/broker-password`` (what
    ``fleet provision --out DIR`` makes). A missing file is an error before anything connects:
    a simulator that silently ran with fewer devices would skew whatever it measures.
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for device_id in device_ids:
        for candidate in (directory / f"{device_id}.pw", directory / device_id / "broker-password"):
            if candidate.is_file():
                found[device_id] = candidate
                break
        else:
            missing.append(device_id)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise click.UsageError(
            f"--device-credentials {directory}: no password file for {len(missing)} of "
            f"{len(device_ids)} devices ({shown}); expected DEVICE_ID.pw or "
            "DEVICE_ID/broker-password (as fleet provision makes) for every device id"
        )
    return found


@click.command("simulate")
@broker_options()
@click.option(
    "--root",
    "root_json",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The repository's root.json (the devices' trust anchor).",
)
@click.option("--devices", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--model", type=_params.MODEL_NAME, default="digits", show_default=True)
@click.option("--group", type=_params.GROUP, default="lab", show_default=True)
@click.option("--prefix", default="sim", show_default=True, help="Device ids: PREFIX-0000...")
@click.option(
    "--initial-release",
    type=click.IntRange(min=1),
    help="Release every device starts with (default: install per rollout/newest).",
)
@click.option(
    "--fault-rate",
    "error_rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Chance that any inference fails.",
)
@click.option("--latency-factor", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option("--install-failure-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--bad-release",
    type=click.IntRange(min=1),
    multiple=True,
    help="A release that misbehaves in the field (repeatable).",
)
@click.option("--bad-error-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option(
    "--devices-per-connection",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help=">1 multiplexes device ids on one MQTT connection.",
)
@click.option(
    "--independent",
    type=click.IntRange(min=0),
    help="Devices with their own TUF trust state [default: all].",
)
@click.option(
    "--trust-group-size",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Devices sharing one TUF trust state, among the others.",
)
@click.option(
    "--report-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between telemetry reports per device.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to run (0: until Ctrl-C).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where trust states live [default: a temporary directory].",
)
@click.option(
    "--battery-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of devices on a solar-charged battery (the rest on mains).",
)
@click.option(
    "--drift-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of devices with a drift episode (their camera gets brighter for a while).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (charge, sun, drift episodes).",
)
@click.option(
    "--start-hour",
    type=click.FloatRange(0, 24, max_open=True),
    help="Hour of the simulated day at start [default: the real UTC time of day].",
)
@click.option(
    "--device-credentials",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Each device logs in as itself (user = device id) with the password in "
    "DIR/DEVICE_ID.pw or DIR/DEVICE_ID/broker-password; --broker-ca-file still applies.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the final statistics as JSON.")
def simulate(
    broker: BrokerSettings,
    root_json: Path,
    devices: int,
    model: str,
    group: str,
    prefix: str,
    initial_release: int | None,
    error_rate: float,
    latency_factor: float,
    install_failure_rate: float,
    bad_release: tuple[int, ...],
    bad_error_rate: float,
    devices_per_connection: int,
    independent: int | None,
    trust_group_size: int,
    report_interval: float,
    duration: float,
    workdir: Path | None,
    battery_fraction: float,
    drift_fraction: float,
    time_scale: float,
    start_hour: float | None,
    device_credentials: Path | None,
    seed: int,
    as_json: bool,
) -> None:
    """Run N light simulated agents in this process (real MQTT and TUF, synthetic inference).

    Each device publishes status (retained, with a last will when it has its own
    connection), telemetry and rollout transitions, and follows `rollouts/<group>.json`.
    Battery devices and drift episodes are judged by the agent's own power policy and drift
    detector (see docs/rollouts.md). With --device-credentials each device connects as its
    own broker user, as on a secured site.
    """
    from edge_agent.fleet.simulator import FaultSettings, FleetSimulator, SimulatorSettings
    from edge_agent.fleet.simulator.drift import DriftEpisodes
    from edge_agent.fleet.simulator.power import SupplySettings

    faults = FaultSettings(
        error_rate=error_rate,
        latency_factor=latency_factor,
        install_failure_rate=install_failure_rate,
        bad_releases=frozenset(bad_release),
        bad_error_rate=bad_error_rate,
    )
    settings = SimulatorSettings(
        devices=devices,
        model=model,
        group=group,
        prefix=prefix,
        initial_release=initial_release,
        devices_per_connection=devices_per_connection,
        independent=independent,
        trust_group_size=trust_group_size,
        report_interval_s=report_interval,
        faults=faults,
        seed=seed,
        supply=SupplySettings(battery_fraction=battery_fraction),
        drift=DriftEpisodes(fraction=drift_fraction),
        time_scale=time_scale,
        start_hour=start_hour,
    )
    device_broker = None
    if device_credentials is not None:
        if broker.username or broker.password_file:
            raise click.UsageError(
                "--device-credentials logs each device in as itself: leave out "
                "--broker-username and --broker-password-file"
            )
        if devices_per_connection > 1:
            raise click.UsageError(
                "--device-credentials needs one connection per device: "
                "--devices-per-connection must be 1"
            )
        files = credential_files(device_credentials, settings.device_ids())

        def device_broker(device_id: str) -> BrokerSettings:
            return broker.model_copy(
                update={"username": device_id, "password_file": files[device_id]}
            )

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tempfile.TemporaryDirectory(prefix="edge-agent-sim-") as scratch:
            simulator = FleetSimulator(
                broker,
                root_json,
                workdir or Path(scratch),
                settings,
                device_broker=device_broker,
            )
            with simulator:
                if not as_json:
                    click.echo(
                        f"{devices} simulated devices on {broker.url} (group {group}); Ctrl-C stops"
                    )
                started = time.monotonic()
                while not stop.wait(min(5.0, duration) if duration else 5.0):
                    if not as_json:
                        stats = simulator.stats()
                        click.echo(
                            f"active {stats['active']}  messages {stats['messages_total']}  "
                            f"tuf {stats['tuf']}"
                        )
                    if duration and time.monotonic() - started >= duration:
                        break
                stats = simulator.stats()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(json.dumps(stats, indent=2) if as_json else f"stopped: {stats}")
