"""``models pull --link-window``, run as a user runs it: outside every window nothing is fetched.

A real ``edge-agent models pull`` subprocess against a real registry on real Mosquitto. The time
of day is either computed from the real clock (a window that cannot contain now) or faked in
the pull's process only with libfaketime (a few seconds before a window opens), so the test
sees the whole wait: announced, nothing fetched, then the download once the window opens. A
window closing mid-download is driven through the update state machine the pull runs, with the
time of day injected, since a real window stays closed for at least a minute.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge_agent.cli._link_windows import EXIT_OUTSIDE_WINDOWS
from edge_agent.config import FetchSettings
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import UpdateLimits, UpdateManager, UpdateState
from edge_agent.transport.budget import LinkBudget
from edge_agent.trust.device.client import DeviceUpdater
from edge_agent.trust.device.link import RegistryLink
from tests.fakes.delivery_env import delivery_env, pull_command
from tests.fixtures.faketime import LIBFAKETIME, faked_environment
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import patience, wait_for

pytestmark = pytest.mark.mqtt

MODELS = Path(__file__).resolve().parents[2] / "models"
DIGITS = MODELS / "digits"
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
        assert env.server.served_bytes("dev-nowait") == 0, "fetched outside the windows"
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
                assert env.server.served_bytes("dev-night") == 0, "fetched outside the windows"
                out, _ = pull.communicate(timeout=lead + 60)
            finally:
                pull.kill()
        assert pull.returncode == 0, stderr.read_text()
        assert "link window open; pulling" in stderr.read_text()
        assert json.loads(out)[0]["state"] == "active"
        assert env.server.served_bytes("dev-night") > 0
    with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
        active = store.active("digits")
        assert active is not None and active.sha256 == release.sha256


def test_a_window_closing_mid_download_pauses_it_past_the_download_limit_then_it_resumes(
    tmp_path: Path, mosquitto: Broker
):
    """Regression: the update's download limit ran on the wall clock, so a pull whose window
    closed mid-download failed after ``--timeout`` although the transfer was only waiting."""
    minute = [4 * 60 + 59]  # 04:59, inside 01:00-05:00
    budget = LinkBudget(200_000.0, ["01:00-05:00"], minute_of_day=lambda: minute[0])
    settings = FetchSettings(chunk_bytes=16 * 1024, chunk_timeout_s=2.0, deadline_s=60)
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(MODELS / "digits32" / "digits32_int8.onnx")  # 199 KB, 13 chunks
        device = env.device("dev-pause", settings=settings)
        link = RegistryLink(device.client, device.device_id, budget)
        published: list[str] = []
        manager = UpdateManager(
            device.store,
            lambda cancel: DeviceUpdater(
                device.metadata_dir,
                device.client,
                device.device_id,
                device.download_dir,
                settings,
                cancel=cancel,
                link=link,
            ),
            lambda _topic, payload: published.append(json.loads(payload)["state"]),
            device.device_id,
            limits=UpdateLimits(refresh_s=10, download_s=1.0),
            link_paused=budget.paused,
        )

        closed = threading.Event()

        def landed(done: int, _total: int) -> None:
            if done > 0 and not closed.is_set():
                minute[0] = 5 * 60  # 05:00: the window closes after the first chunk
                closed.set()

        result: list = []
        worker = threading.Thread(target=lambda: result.append(manager.update("digits", landed)))
        worker.start()
        try:
            wait_for(closed.is_set, 10, "the first chunk")
            time.sleep(0.5)  # what was asked for before the close lands
            served = env.server.served_bytes(device.device_id, "targets/")
            time.sleep(1.5)  # closed for twice the download limit
            assert env.server.served_bytes(device.device_id, "targets/") == served
            assert worker.is_alive() and published == ["downloading"]
            minute[0] = 60  # 01:00 the next night
        finally:
            worker.join(30)
        link.close()
        assert result[0].state is UpdateState.ACTIVE, result[0].reason
        assert served < release.length  # really paused mid-way
        assert device.store.active("digits").sha256 == release.sha256  # type: ignore[union-attr]
