"""The `edge-agent` command line: one module per command group, registered in ``COMMANDS``.

Errors that edge-agent raises on purpose (``EdgeAgentError``) are printed as one clear message
with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from edge_agent import __version__
from edge_agent.errors import EdgeAgentError

COMMANDS: dict[str, str] = {
    "config": "edge_agent.cli.config_cmd:config",
    "doctor": "edge_agent.cli.runtime_cmd:doctor",
    "infer": "edge_agent.cli.runtime_cmd:infer",
    "bench": "edge_agent.cli.runtime_cmd:bench",
    "run": "edge_agent.cli.run_cmd:run",
    "demo": "edge_agent.cli.demo_cmd:demo",
    "convert": "edge_agent.cli.convert_cmd:convert",
    "samples": "edge_agent.cli.samples_cmd:samples",
    "repo": "edge_agent.cli.repo_cmd:repo",
    "models": "edge_agent.cli.models_cmd:models",
    "registry": "edge_agent.cli.registry_cmd:registry",
    "fleet": "edge_agent.cli.fleet_cmd:fleet",
    "monitor": "edge_agent.cli.monitor_cmd:monitor",
}
"""Subcommand name -> "module:command", imported only when that subcommand runs."""

SUMMARIES: dict[str, str] = {
    "bench": "Benchmark MODEL on this device: load time, latency percentiles, throughput, memory.",
    "config": "Check config files and show every key they accept.",
    "convert": "Turn a trained model into a verified edge package "
    "(pip install 'edge-agent[convert]').",
    "demo": "Run the whole system on this machine and show what each part does.",
    "doctor": "Show runtimes, delegates / execution providers (really loaded) and sensors found.",
    "fleet": "Operate a fleet: staged, gated rollouts and a simulated fleet for tests.",
    "infer": "Run MODEL (.tflite or .onnx) once on an input file and show what it says.",
    "models": "Installed models: list, activate, roll back, and pull signed ones "
    "from the registry.",
    "monitor": "The central monitor of a fleet: dashboard, JSON API, Prometheus metrics "
    "and alerts.",
    "registry": "Serve model metadata and files to the fleet (MQTT is transport; TUF is trust).",
    "repo": "Create and maintain the signed (TUF) repository that devices trust.",
    "run": "Run the agent: serve models over the local API, report to the broker, run pipelines.",
    "samples": "Inspect and export the inputs/outputs the agent captured (see docs/capture.md).",
}
"""Subcommand name -> the first sentence of its help, so `edge-agent --help` imports no command
module (a unit test checks each against the command's own docstring)."""


class LazyGroup(click.Group):
    """A click group whose subcommands import on use, so `--help` and start-up stay fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All registered subcommands, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the subcommand's module and return the command."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the subcommands from ``SUMMARIES``: importing them all would cost seconds."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # a stand-in command gives click's own shortening (what it prints for a loaded one)
        rows = [
            (name, click.Command(name, help=SUMMARIES.get(name, "")).get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-agent")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="How much to log to stderr.",
)
def cli(log_level: str) -> None:
    """edge-agent: run ML models on edge devices and manage them as a fleet.

    Start with `edge-agent doctor` to see which runtimes and accelerators this device has, then
    `edge-agent infer MODEL --input FILE` and `edge-agent bench MODEL`.
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EdgeAgentError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
