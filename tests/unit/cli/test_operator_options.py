"""Operator-command options that need no broker: `registry serve --tracked-devices` and
`fleet simulate --device-credentials` (refused before anything connects)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.cli.simulate_cmd import credential_files


def test_registry_serve_takes_tracked_devices_and_refuses_zero(tmp_path: Path):
    runner = CliRunner()
    shown = runner.invoke(cli, ["registry", "serve", "--help"])
    assert shown.exit_code == 0 and "--tracked-devices" in shown.output
    command = ["registry", "serve", "--repo", str(tmp_path), "--broker", "mqtt://host"]
    refused = runner.invoke(cli, [*command, "--tracked-devices", "0"])
    assert refused.exit_code == 2 and "--tracked-devices" in refused.output


def test_device_credentials_read_both_layouts(tmp_path: Path):
    (tmp_path / "sim-0000.pw").write_text("a\n")
    (tmp_path / "sim-0001").mkdir()
    (tmp_path / "sim-0001" / "broker-password").write_text("b\n")
    files = credential_files(tmp_path, ["sim-0000", "sim-0001"])
    assert files == {
        "sim-0000": tmp_path / "sim-0000.pw",
        "sim-0001": tmp_path / "sim-0001" / "broker-password",
    }


def _simulate(tmp_path: Path, *extra: str) -> tuple[int, str]:
    root = tmp_path / "root.json"
    root.write_text("{}")
    result = CliRunner().invoke(
        cli,
        ["fleet", "simulate", "--root", str(root), "--broker", "mqtt://127.0.0.1:1", *extra],
    )
    return result.exit_code, result.output


def test_simulate_with_a_missing_device_password_file_is_a_usage_error(tmp_path: Path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for i in (0, 2):
        (credentials / f"sim-{i:04d}.pw").write_text("secret\n")
    code, output = _simulate(tmp_path, "--devices", "9", "--device-credentials", str(credentials))
    assert code == 2
    assert "no password file for 7 of 9 devices" in output
    assert "sim-0001, sim-0003" in output and "and 2 more" in output


@pytest.mark.parametrize(
    "extra",
    [
        ["--broker-username", "someone"],
        ["--devices-per-connection", "2"],
    ],
)
def test_simulate_device_credentials_refuse_a_shared_login(tmp_path: Path, extra: list[str]):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    code, output = _simulate(tmp_path, "--device-credentials", str(credentials), *extra)
    assert code == 2 and "--device-credentials" in output
