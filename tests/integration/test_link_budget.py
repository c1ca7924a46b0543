"""A metered link's budget: the rate cap holds, and outside the link windows nothing moves.

Real Mosquitto, real registry, real device transfer and real sample uploader, sharing one
``LinkBudget``; only the time of day is injected (a list the test moves).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.capture.store import SampleStore
from edge_agent.capture.uploader import SampleUploader
from edge_agent.config import FetchSettings, UploadSettings
from edge_agent.transport import topics
from edge_agent.transport.budget import LinkBudget
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from edge_agent.trust.device.client import DeviceUpdater
from edge_agent.trust.device.link import RegistryLink
from tests.fakes.delivery_env import delivery_env, pull_command
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for
from tests.integration.test_capture_upload import fill

pytestmark = pytest.mark.mqtt

MODELS = Path(__file__).resolve().parents[2] / "models"
SETTINGS = FetchSettings(chunk_bytes=16 * 1024, chunk_timeout_s=2.0, deadline_s=60)


def budgeted_updater(device: Any, budget: LinkBudget) -> DeviceUpdater:
    """A device's updater whose registry link shares ``budget``."""
    link = RegistryLink(device.client, device.device_id, budget)
    return DeviceUpdater(
        device.metadata_dir,
        device.client,
        device.device_id,
        device.download_dir,
        SETTINGS,
        link=link,
    )


def test_downloads_stay_under_the_rate_cap(tmp_path: Path, mosquitto: Broker):
    cap = 200_000.0  # bytes/s (1600 kbps)
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(MODELS / "digits32" / "digits32_fp32.onnx")  # 570 KB
        device = env.device(settings=SETTINGS)
        budget = LinkBudget(cap)
        with budgeted_updater(device, budget) as updater:
            updater.refresh()
            latest = updater.latest("digits")
            time.sleep(budget.burst_bytes / cap)  # the refresh took from the bucket too
            started = time.monotonic()
            path, _ = updater.download(latest)
            seconds = time.monotonic() - started
        assert path.stat().st_size == release.length
        # the first burst is free; everything after it is paced at the cap
        paced = release.length - budget.burst_bytes
        assert paced / seconds <= cap * 1.1, f"{paced / seconds:.0f} B/s over a cap of {cap}"
        assert paced / seconds >= cap * 0.7, f"{paced / seconds:.0f} B/s: far below the cap"


def test_outside_the_link_windows_nothing_moves_and_inside_it_resumes(
    tmp_path: Path, mosquitto: Broker
):
    minute = [6 * 60]  # 06:00, outside 01:00-05:00
    budget = LinkBudget(None, ["01:00-05:00"], minute_of_day=lambda: minute[0])
    with delivery_env(tmp_path, mosquitto.url) as env, SampleStore(tmp_path / "samples") as store:
        release = env.publish(MODELS / "digits32" / "digits32_int8.onnx")
        device = env.device(settings=SETTINGS)
        fill(store, 2)
        uploaded: list[bytes] = []
        with MqttClient(mosquitto.url, "monitor") as monitor:
            monitor.connect()
            monitor.subscribe(
                topics.device_topic(device.device_id, DeviceChannel.SAMPLES),
                lambda m: uploaded.append(m.payload),
            )
            uploader = SampleUploader(
                store,
                device.client,
                device.device_id,
                UploadSettings(chunk_bytes=4096),
                poll_s=0.05,
                budget=budget,
            )
            outcome: list[object] = []

            def pull() -> None:
                with budgeted_updater(device, budget) as updater:
                    outcome.append(updater.download_latest("digits")[0])

            worker = threading.Thread(target=pull)
            worker.start()
            uploader.start()
            try:
                wait_for(lambda: "link windows" in uploader.waiting_for, 5, "the upload to wait")
                time.sleep(1.5)
                assert env.server.served_bytes(device.device_id) == 0, "fetched outside windows"
                assert uploaded == [] and len(store.pending_upload()) == 2
                minute[0] = 2 * 60  # 02:00: the window opens
                worker.join(30)
                wait_for(lambda: not store.pending_upload(), 10, "the upload in the window")
            finally:
                uploader.stop()
        assert outcome and Path(str(outcome[0])).stat().st_size == release.length
        assert uploaded


def test_models_pull_honours_max_rate_kbps(tmp_path: Path, mosquitto: Broker):
    """The CLI's cap is the same budget: at 1600 kbps a 570 KB pull takes ~2.5 s longer."""
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(MODELS / "digits32" / "digits32_fp32.onnx")

        def pull(device_id: str, *options: str) -> float:
            command = pull_command(env, tmp_path / device_id, device_id, *options)
            started = time.monotonic()
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            return time.monotonic() - started

        free = pull("cli-free")  # process start-up, refresh and install: the same in both
        capped = pull("cli-capped", "--max-rate-kbps", "1600")
        paced_s = (release.length - LinkBudget(200_000.0).burst_bytes) / 200_000
        assert capped - free >= 0.8 * paced_s, f"{capped:.1f} s vs {free:.1f} s uncapped"


def test_a_window_that_starts_below_one_range_still_fetches_metadata(
    tmp_path: Path, mosquitto: Broker
):
    """Regression: metadata (size unknown) was asked for in ranges of ``chunks_per_request``;
    a window starting smaller (1 MiB of 256 KiB chunks = 4 < 8) never had room, and the
    refresh hung until its deadline."""
    settings = FetchSettings(chunk_bytes=256 * 1024, window=16, chunks_per_request=8)
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(MODELS / "digits" / "digits_fp32.onnx")
        device = env.device(settings=settings.model_copy(update={"deadline_s": 10}))
        with device.updater() as updater:
            path, _ = updater.download_latest("digits")
        assert path.stat().st_size == release.length
