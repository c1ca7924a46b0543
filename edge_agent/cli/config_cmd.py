"""`edge-agent config`: check config files, print the schema and the key reference."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_agent.config import AgentConfig, DeviceConfig, check_config_file
from edge_agent.config.reference import render_reference
from edge_agent.errors import ConfigError


@click.group()
def config() -> None:
    """Check config files and show every key they accept."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate agent and device config FILES; exit 2 on the first file with problems.

    Each problem names the file, line, key path, the bad value and what is expected.
    """
    failed = 0
    for path in files:
        try:
            kind, _ = check_config_file(path)
        except ConfigError as exc:
            failed += 1
            click.secho(f"✗ {exc}", fg="red", err=True)
            continue
        click.secho(f"✓ {path}: valid {kind}", fg="green")
    if failed:
        raise SystemExit(2)


@config.command("schema")
@click.option(
    "--kind",
    type=click.Choice(["agent", "device"]),
    default="agent",
    show_default=True,
    help="Which document's schema to print.",
)
def schema(kind: str) -> None:
    """Print the JSON Schema of agent or device configs (for editors and CI linting)."""
    model = AgentConfig if kind == "agent" else DeviceConfig
    click.echo(json.dumps(model.model_json_schema(), indent=2))


@config.command("reference")
def reference() -> None:
    """Print the Markdown reference of every config key (docs/config-reference.md)."""
    click.echo(render_reference(), nl=False)
