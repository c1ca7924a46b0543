"""`edge-agent run`: the device daemon (what systemd starts)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import click

from edge_agent.cli import _params
from edge_agent.cli._broker import broker_options
from edge_agent.config import AgentConfig, ApiSettings, BrokerSettings, validate
from edge_agent.errors import ConfigError


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Agent config file (see docs/config-reference.md).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Quick serve: one model file, no config file needed.",
)
@click.option(
    "--name",
    type=_params.SERVED_NAME,
    default=None,
    help="With --model: the name to serve it under (default: the file's stem).",
)
@click.option(
    "--api",
    default=ApiSettings.field_default("listen"),
    show_default=True,
    help="With --model: HOST:PORT or unix:/path of the local inference API.",
)
@broker_options(required=False)
@click.option(
    "--device-id",
    type=_params.DEVICE_ID,
    default=None,
    help="With --model: this device's id (default: the host name).",
)
@click.option(
    "--device",
    default=AgentConfig.field_default("device"),
    show_default=True,
    metavar="NAME|FILE",
    help="With --model: the device config (shipped class, YAML file or auto).",
)
@click.option(
    "--store-dir",
    type=click.Path(path_type=Path),
    default=Path.home() / ".local" / "state" / "edge-agent",
    show_default=True,
    help="With --model: where the telemetry outbox and samples are kept.",
)
def run(
    config_path: Path | None,
    model_path: Path | None,
    name: str | None,
    api: str,
    broker: BrokerSettings | None,
    device_id: str | None,
    device: str,
    store_dir: Path,
) -> None:
    """Run the agent: serve models over the local API, report to the broker, run pipelines.

    `edge-agent run --config /etc/edge-agent/agent.yaml` is the full form (what the systemd
    unit runs); `edge-agent run --model model.tflite` serves one model with no config file.
    Stops cleanly on SIGTERM / Ctrl-C; SIGHUP reloads the config file.
    """
    from edge_agent.agent.process import Agent
    from edge_agent.config import load_agent_config

    if (config_path is None) == (model_path is None):
        raise click.UsageError("give either --config FILE or --model FILE")
    if config_path is not None:
        config = load_agent_config(config_path)
    else:
        assert model_path is not None
        if not model_path.exists():
            raise ConfigError(f"{model_path}: no such model file")
        config = quick_config(model_path, name, api, broker, device_id, device, store_dir)
    agent = Agent(config, config_path=config_path)
    try:
        agent.start()
    except BaseException:
        agent.stop()
        raise
    click.echo(
        f"edge-agent {config.device_id}: serving {', '.join(agent.models.names())} on "
        f"{agent.api.address} (Ctrl-C to stop)",
        err=True,
    )
    raise SystemExit(agent.serve_forever())


def quick_config(
    model: Path,
    name: str | None,
    api: str,
    broker: BrokerSettings | None,
    device_id: str | None,
    device: str,
    store_dir: Path,
) -> AgentConfig:
    """The agent config `edge-agent run --model FILE` stands for."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:64]
    data: dict[str, Any] = {
        "device_id": device_id or host.strip("-_") or "edge-agent",
        "device": device,
        "models": [{"name": name or model.stem, "path": str(model)}],
        "api": {"listen": api},
        "store_dir": str(store_dir),
    }
    if broker is not None:
        data["broker"] = broker.model_dump(mode="json", exclude_none=True)
    return validate(AgentConfig, data, source="the command line")
