"""`edge-agent demo`, the README's main command, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
        "packaged with its drift profile",
        "on solar-charged batteries",
        "entered the saving mode at night: battery 25% <= 25%",
        "left it once the sun recharged it: battery 3",  # 30-31 % >= 30 %, per check timing
        ">= 30% (charging)",
        "the lighting changes",
        "demo-cam-1 raised a drift alarm (input: ok -> alarm)",
        "drift alarm on demo-cam-1 for model digits32",
        "samples captured on drift reached the monitor",
        "the drift alarm cleared",
        "stopped cleanly",
    ):
        assert expected in out, out
    assert "top-1 right on 100.0%" in out  # the pipeline names every digit of the video
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("moment", ["Press Ctrl-C to stop.", "delivered"])
def test_demo_stops_within_5_s_of_a_terminal_ctrl_c_without_warnings(moment, tmp_path):
    """Regression: Ctrl-C in a terminal sends SIGINT to the whole process group; Mosquitto died
    first and the demo took about 25 s to stop, logging "lost the broker ... reconnecting".
    Once it waits, and in the middle of its steps (a release just delivered)."""
    work = tmp_path / "demo"
    process = subprocess.Popen(
        [str(BIN), "demo", "--frames", "40", "--broker", "mosquitto", "--workdir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal's foreground job
        env={**os.environ, "COLUMNS": "200"},
    )
    out: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # set-up, delivery and the rollout, then it waits
            out.append(line)
            if moment in line:
                break
        else:
            raise AssertionError("the demo ended before it was ready:\n" + "".join(out))
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        rest, err = process.communicate(timeout=30)
        stopped_s = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    out.append(rest)
    assert process.returncode == 0, "".join(out) + err
    assert "stopped cleanly" in rest
    assert stopped_s < 5.0, f"took {stopped_s:.1f} s to stop"
    assert "WARNING" not in err and "lost the broker" not in err, err
    assert "Traceback" not in err
