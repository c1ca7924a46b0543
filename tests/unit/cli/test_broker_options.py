"""Every command that talks to a broker takes the same six options, built from BrokerSettings,
and none takes a password on the command line."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from edge_agent.cli import COMMANDS, cli

BROKER_OPTIONS = {
    "--broker",
    "--broker-username",
    "--broker-password-file",
    "--broker-ca-file",
    "--broker-cert-file",
    "--broker-key-file",
}


def _commands(group: click.Group, context: click.Context, path: str = "") -> list[tuple]:
    found = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += _commands(command, context, f"{path}{name} ")
        else:
            found.append((f"{path}{name}", command))
    return found


def test_every_command_with_a_broker_takes_exactly_the_broker_options():
    context = click.Context(cli)
    with_broker = []
    for path, command in _commands(cli, context):
        if path == "demo":
            continue  # its --broker picks the broker it starts (mosquitto|embedded)
        options = {o for p in command.params for o in p.opts if o.startswith("--broker")}
        if options:
            assert options == BROKER_OPTIONS, path
            with_broker.append(path)
        assert not any("password" in o and "file" not in o for p in command.params for o in p.opts)
    for expected in ("registry serve", "monitor serve", "models pull", "fleet simulate", "run"):
        assert expected in with_broker
    assert set(COMMANDS) >= {p.split()[0] for p in with_broker}


def test_a_password_in_the_broker_url_is_refused_with_a_pointer_to_the_password_file(
    tmp_path: Path,
):
    result = CliRunner().invoke(
        cli,
        ["registry", "serve", "--repo", str(tmp_path), "--broker", "mqtt://registry:pw@host"],
    )
    assert result.exit_code == 2
    assert "--broker-password-file" in result.output
    assert "pw@" not in result.output


def test_tls_files_without_mqtts_are_refused_naming_the_option(tmp_path: Path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    tls = ["--broker-ca-file", str(ca)]
    result = CliRunner().invoke(
        cli,
        ["registry", "serve", "--repo", str(tmp_path), "--broker", "mqtt://host", *tls],
    )
    assert result.exit_code == 2 and "use mqtts://" in result.output
