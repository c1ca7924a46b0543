"""Shipped device configs pass `config check`; hardware detection picks the right one."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.config import detect_device_class, resolve_device_config, shipped_device_configs

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "device_configs").glob("*.yaml"))


def test_the_issue_lists_device_classes_all_ship():
    assert {p.stem for p in SHIPPED} >= {
        "rpi4",
        "rpi5",
        "rpi5-coral",
        "jetson-orin-nano",
        "jetson-nano",
        "x86-generic",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_device_config_passes_config_check(path):
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid device config" in result.output


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_device_class_matches_its_file_name(path):
    config, _ = resolve_device_config(str(path))
    assert config.device_class == path.stem


def test_shipped_configs_are_found_by_name():
    assert set(shipped_device_configs()) >= {p.stem for p in SHIPPED}
    config, source = resolve_device_config("jetson-orin-nano")
    assert [p.name for p in config.runtime.onnx.providers] == ["tensorrt", "cuda", "cpu"]
    assert source.endswith("jetson-orin-nano.yaml")


@pytest.mark.parametrize(
    ("model", "tegra", "machine", "expected"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0\x00", False, "aarch64", "rpi5"),
        ("Raspberry Pi 4 Model B Rev 1.4\x00", False, "aarch64", "rpi4"),
        ("NVIDIA Jetson Orin Nano Developer Kit\x00", True, "aarch64", "jetson-orin-nano"),
        ("NVIDIA Jetson Nano Developer Kit\x00", True, "aarch64", "jetson-nano"),
        (None, False, "x86_64", "x86-generic"),
        (None, False, "riscv64", "generic"),
    ],
)
def test_detect_device_class(model, tegra, machine, expected):
    assert detect_device_class(model, tegra, machine) == expected


def test_check_exits_non_zero_and_names_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("device_class: rpi4\nruntime:\n  on_delegate_failure: sometimes\n")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "runtime.on_delegate_failure" in result.output
    assert "'sometimes'" in result.output
