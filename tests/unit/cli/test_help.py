"""`edge-agent --help` lists every command without importing one (each costs imports)."""

from __future__ import annotations

import subprocess
import sys

import click

from edge_agent.cli import COMMANDS, SUMMARIES, cli


def test_every_command_has_the_summary_of_its_own_help():
    """SUMMARIES repeats each command's first help sentence: this keeps the copy true."""
    assert set(SUMMARIES) == set(COMMANDS)
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None
        assert command.get_short_help_str(limit=10_000) == SUMMARIES[name], name


def test_help_lists_commands_without_importing_them():
    """Regression: listing the commands imported all of them, monitor and TUF tools included."""
    code = (
        "import sys\n"
        "from edge_agent.cli import cli\n"
        "cli.main(['--help'], standalone_mode=False)\n"
        "print('MODULES', *sorted(m for m in sys.modules if m.startswith('edge_agent')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in out  # listed
    modules = out.split("MODULES", 1)[1].split()
    assert modules == ["edge_agent", "edge_agent.cli", "edge_agent.errors"]
