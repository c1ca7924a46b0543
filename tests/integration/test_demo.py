"""`edge-agent demo`, the README's main command, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "edge-agent"


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_delivers_v1_rolls_out_v2_and_stops_cleanly(broker, tmp_path):
    result = subprocess.run(
        [
            str(BIN),
            "demo",
            "--duration",
            "1",
            "--frames",
            "60",
            "--broker",
            broker,
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for expected in (
        "repository",
        "registry",
        "dashboard at http://127.0.0.1:",
        "digits32 release 1 verified (TUF), installed and serving",
        "digits32 release 2 verified (TUF), installed and serving",
        "simulated agents in group 'demo'",
        "advance: wave 1 passed its gates",
        "complete: all 2 waves passed their gates",
        "v2 active: passed: agreement",
        "stopped cleanly",
    ):
        assert expected in out, out
    assert "top-1 right on 100.0%" in out  # the pipeline names every digit of the video
    assert "Traceback" not in result.stderr
