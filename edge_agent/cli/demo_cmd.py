"""`edge-agent demo`: the whole system on this machine, nothing to install or configure."""

from __future__ import annotations

import signal
from pathlib import Path

import click


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep keys, repository and state here (default: a temporary folder that "
    "is removed at the end).",
)
@click.option(
    "--frames",
    type=click.IntRange(20, 100_000),
    default=300,
    show_default=True,
    help="Frames in the sample video the agent's pipeline plays (looped).",
)
@click.option(
    "--broker",
    type=click.Choice(["auto", "mosquitto", "embedded"]),
    default="auto",
    show_default=True,
    help="Mosquitto if installed (secured: the shipped deploy/mosquitto.conf on TLS, a "
    "password per user), else an embedded Python broker (plain, anonymous).",
)
def demo(duration: float | None, workdir: Path | None, frames: int, broker: str) -> None:
    """Run the whole system on this machine and show what each part does.

    Starts a private MQTT broker (Mosquitto with the shipped secured config: TLS with a CA made
    now in WORKDIR/tls, a password per user in WORKDIR/credentials), a signed model repository
    with fresh keys, the registry, the monitor and its dashboard, and an agent running a
    pipeline on a sample video with a sample model delivered through the registry; then
    publishes v2 of the model and rolls it out through the agent's health-gated swap. Prints
    the dashboard URL and how to connect to the broker. Ctrl-C stops it all.
    """
    from edge_agent.demo.run import Demo, DemoOptions

    runner = Demo(DemoOptions(workdir=workdir, duration_s=duration, frames=frames, broker=broker))
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    runner.run()
