"""`edge-agent registry serve`: serve a signed repository to devices over MQTT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from edge_agent.cli._broker import broker_options
from edge_agent.config import BrokerSettings
from edge_agent.fleet.registry import RegistryServer, RegistrySettings
from edge_agent.transport.client import MqttClient
from edge_agent.trust.operator.repository import OperatorRepository
from edge_agent.trust.protocol import MAX_RANGE_BYTES

_DEFAULTS = RegistrySettings()


@click.group()
def registry() -> None:
    """Serve model metadata and files to the fleet (MQTT is transport; TUF is trust)."""


@registry.command("serve")
@click.option(
    "--repo",
    "repo_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The repository made by `edge-agent repo init`.",
)
@broker_options()
@click.option("--client-id", default="edge-agent-registry", show_default=True)
@click.option(
    "--max-chunk",
    type=click.IntRange(256, 1 << 20),
    default=_DEFAULTS.max_chunk_bytes,
    show_default=True,
    help="Largest chunk (one MQTT message) answered, bytes; keep it below the broker's "
    "message_size_limit.",
)
@click.option(
    "--max-range",
    type=click.IntRange(256, MAX_RANGE_BYTES),
    default=_DEFAULTS.max_range_bytes,
    show_default=True,
    help="Longest byte range one request may ask for (streamed back as chunks).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=_DEFAULTS.rate_per_device,
    show_default=True,
    help="Chunks per second allowed per device (a range of n chunks costs n).",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    default=_DEFAULTS.burst_per_device,
    show_default=True,
    help="Chunks a device may ask for at once.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=_DEFAULTS.workers, show_default=True)
@click.option(
    "--tracked-devices",
    type=click.IntRange(min=1),
    default=_DEFAULTS.tracked_devices,
    show_default=True,
    help="Devices whose rate buckets and served counts are remembered (least recently used "
    "out first); set it above the fleet's size.",
)
def serve(
    repo_dir: Path,
    broker: BrokerSettings,
    client_id: str,
    max_chunk: int,
    max_range: int,
    rate: float,
    burst: int,
    workers: int,
    tracked_devices: int,
) -> None:
    """Answer chunk requests from REPO until SIGINT/SIGTERM; announce new versions."""
    OperatorRepository(repo_dir)  # fails clearly when REPO is not a repository
    if max_range < max_chunk:
        raise click.BadParameter(
            f"--max-range ({max_range}) must be at least --max-chunk ({max_chunk})",
            param_hint="--max-range",
        )
    settings = RegistrySettings(
        max_chunk_bytes=max_chunk,
        max_range_bytes=max_range,
        rate_per_device=rate,
        burst_per_device=burst,
        workers=workers,
        tracked_devices=tracked_devices,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with MqttClient.from_settings(broker, client_id) as client:
        client.connect()
        server = RegistryServer(repo_dir, client, settings)
        server.start()
        click.echo(
            f"serving {repo_dir} on {broker.url} (max chunk {max_chunk} B, "
            f"{rate:g} chunks/s per device)",
            err=True,
        )
        stop.wait()
        server.stop()
