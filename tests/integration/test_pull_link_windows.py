"""``models pull --link-window``, run as a user runs it: outside every window nothing is fetched.

A real ``edge-agent models pull`` subprocess against a real registry on real Mosquitto. The time
of day is either computed from the real clock (a window that cannot contain now) or faked in
the pull's process only with libfaketime (a few seconds before a window opens), so the test
sees the whole wait: announced, nothing fetched, then the download once the window opens.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest

from edge_agent.cli._link_windows import EXIT_OUTSIDE_WINDOWS
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from tests.fakes.delivery_env import delivery_env, pull_command
from tests.fixtures.faketime import LIBFAKETIME, faked_environment
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import patience, wait_for

pytestmark = pytest.mark.mqtt

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
LEAD_S = 8
"""Faked seconds from the pull's start to the window's opening: more than the interpreter's
start-up on a loaded machine (else the pull starts inside the window and never waits)."""


def _hhmm(minute_of_day: int) -> str:
    minute_of_day %= 24 * 60
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def test_no_wait_outside_every_window_exits_75_and_fetches_nothing(
    tmp_path: Path, mosquitto: Broker
):
    now = datetime.datetime.now()
    minute = now.hour * 60 + now.minute
    later = f"{_hhmm(minute + 120)}-{_hhmm(minute + 180)}"  # opens in 2 h: closed now
    with delivery_env(tmp_path, mosquitto.url) as env:
        env.publish(DIGITS / "digits_fp32.tflite")
        command = pull_command(
            env, tmp_path / "device", "dev-nowait", "--link-window", later, "--no-wait"
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == EXIT_OUTSIDE_WINDOWS, result.stderr
        assert (
            f"error: outside the link windows ({later}); not pulling (--no-wait); the next "
            f"window opens at {later[:5]} local time"
        ) in result.stderr
        assert result.stdout == ""
        assert env.server.requests_for("dev-nowait") == 0, "fetched outside the windows"
    assert not StoreLayout(tmp_path / "device").models.exists()


@pytest.mark.skipif(
    LIBFAKETIME is None, reason="libfaketime is not installed (apt-get install faketime)"
)
def test_outside_the_windows_the_pull_waits_fetching_nothing_then_downloads_inside(
    tmp_path: Path, mosquitto: Broker
):
    lead = int(patience(LEAD_S))
    opening = datetime.datetime.combine(datetime.date.today(), datetime.time(1, 0))
    fake_start = (opening - datetime.timedelta(seconds=lead)).strftime("%Y-%m-%d %H:%M:%S")
    store_dir = tmp_path / "device"
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(DIGITS / "digits_fp32.tflite")
        command = pull_command(
            env,
            store_dir,
            "dev-night",
            "--link-window",
            "12:00-13:00",
            "--link-window",
            "01:00-05:00",
        )
        stderr = tmp_path / "stderr"
        with stderr.open("w") as err:
            pull = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=faked_environment(f"@{fake_start}", TZ="UTC"),
            )
            try:
                wait_for(lambda: "waiting until" in stderr.read_text(), lead, "the pull to wait")
                assert (
                    "outside the link windows (12:00-13:00, 01:00-05:00); waiting until 01:00 "
                    "local time"
                ) in stderr.read_text()
                assert env.server.requests_for("dev-night") == 0, "fetched outside the windows"
                out, _ = pull.communicate(timeout=lead + 60)
            finally:
                pull.kill()
        assert pull.returncode == 0, stderr.read_text()
        assert "link window open; pulling" in stderr.read_text()
        assert json.loads(out)[0]["state"] == "active"
        assert env.server.requests_for("dev-night") > 0
    with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
        active = store.active("digits")
        assert active is not None and active.sha256 == release.sha256
