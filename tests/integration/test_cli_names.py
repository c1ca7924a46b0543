"""Bad names on the command line: exit status 2 and one line that names the option and the rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "edge-agent"


def edge_agent(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_models_pull_with_a_slash_in_the_device_id_is_a_usage_error_not_a_traceback(tmp_path):
    """Regression: `models pull --device-id a/b` printed a ValueError traceback from the topic
    scheme after connecting; now the option is checked with the device-id rule first."""
    root = tmp_path / "root.json"
    root.write_text("{}")
    result = edge_agent(
        "models",
        "pull",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--root",
        root,
        "--store",
        tmp_path / "store",
        "--device-id",
        "a/b",
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--device-id" in result.stderr
    assert "invalid device id 'a/b': use 1-64 letters, digits, '_' or '-'" in result.stderr
    assert not (tmp_path / "store").exists()  # refused before anything was touched


def test_a_config_with_a_reserved_device_id_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("device_id: registry\n")
    result = edge_agent("config", "check", config)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{config}:1: device_id: invalid device id 'registry'" in result.stderr


def test_package_refuses_an_uppercase_model_name(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    result = edge_agent(
        "convert", "package", model, "--name", "Digits", "--version", "1", "-o", tmp_path / "p"
    )
    assert result.returncode == 2, result.stderr
    assert "--name" in result.stderr and "invalid model name 'Digits'" in result.stderr
