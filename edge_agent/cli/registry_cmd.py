"""`edge-agent registry serve`: serve a signed repository to devices over MQTT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from edge_agent.fleet.registry import RegistryServer, RegistrySettings
from edge_agent.transport.client import MqttClient
from edge_agent.trust.repository import OperatorRepository


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
@click.option("--broker", required=True, help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT].")
@click.option("--client-id", default="edge-agent-registry", show_default=True)
@click.option(
    "--max-chunk",
    type=click.IntRange(256, 1 << 20),
    default=256 * 1024,
    show_default=True,
    help="Largest chunk answered, bytes (below the broker limit).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=500.0,
    show_default=True,
    help="Chunk requests per second allowed per device.",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Requests a device may send at once.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
def serve(
    repo_dir: Path,
    broker: str,
    client_id: str,
    max_chunk: int,
    rate: float,
    burst: int,
    workers: int,
) -> None:
    """Answer chunk requests from REPO until SIGINT/SIGTERM; announce new versions."""
    OperatorRepository(repo_dir)  # fails clearly when REPO is not a repository
    settings = RegistrySettings(
        max_chunk_bytes=max_chunk, rate_per_device=rate, burst_per_device=burst, workers=workers
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with MqttClient(broker, client_id) as client:
        client.connect()
        server = RegistryServer(repo_dir, client, settings)
        server.start()
        click.echo(
            f"serving {repo_dir} on {broker} (max chunk {max_chunk} B, {rate:g} req/s per device)",
            err=True,
        )
        stop.wait()
        server.stop()
