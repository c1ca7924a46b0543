"""Downloads resume after a broker restart and after the device process is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_agent.config import FetchSettings
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import UpdateState
from edge_agent.fleet.registry import RegistrySettings
from tests.fakes.delivery_env import chunks_served, delivery_env
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.mqtt

MODELS = Path(__file__).resolve().parents[2] / "models"
EDGE_AGENT = Path(sys.executable).parent / "edge-agent"


def _journal_chunks(download_dir: Path) -> int:
    for journal in download_dir.glob("*.part.json"):
        try:
            return len(json.loads(journal.read_text())["done"])
        except (OSError, ValueError, KeyError):
            return 0
    return 0


def test_download_resumes_after_a_broker_restart(tmp_path: Path, mosquitto: Broker):
    slow = RegistrySettings(rate_per_device=150, burst_per_device=8, notify_poll_s=0.2)
    settings = FetchSettings(
        chunk_bytes=2048,
        window=8,
        chunk_timeout_s=1.0,
        max_attempts=8,
        deadline_s=60,
        flush_every=4,
    )
    with delivery_env(tmp_path, mosquitto.url, settings=slow) as env:
        release = env.publish(MODELS / "digits32" / "digits32_int8.tflite")
        chunks = -(-release.length // settings.chunk_bytes)
        device = env.device(settings=settings)
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(device.manager().update("digits")))
        worker.start()
        wait_for(lambda: _journal_chunks(device.download_dir) >= chunks // 4, 20)
        mosquitto.restart()
        worker.join(60)
        assert outcome and outcome[0].state is UpdateState.ACTIVE, outcome  # type: ignore[attr-defined]
        served = chunks_served(env, device.device_id, settings.chunk_bytes, "targets/")
        assert served < chunks + 2 * settings.window  # lost in-flight requests only, no restart
        assert device.store.active("digits").sha256 == release.sha256  # type: ignore[union-attr]


def test_download_resumes_after_the_device_is_sigkilled(tmp_path: Path, mosquitto: Broker):
    slow = RegistrySettings(rate_per_device=120, burst_per_device=8, notify_poll_s=0.2)
    with delivery_env(tmp_path, mosquitto.url, settings=slow) as env:
        release = env.publish(MODELS / "digits32" / "digits32_int8.tflite")
        chunk = 2048
        chunks = -(-release.length // chunk)
        store_dir = tmp_path / "device-store"
        download_dir = StoreLayout(store_dir).trust_downloads
        command = [
            str(EDGE_AGENT),
            "models",
            "pull",
            "--broker",
            env.broker_url,
            "--root",
            str(env.root_json),
            "--store-dir",
            str(store_dir),
            "--device-id",
            "dev-k",
            "--chunk-bytes",
            str(chunk),
            "--window",
            "8",
            "--chunk-timeout",
            "1",
            "--json",
        ]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: _journal_chunks(download_dir) >= chunks // 3, 20)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.communicate()
        on_disk = _journal_chunks(download_dir)
        served_first = chunks_served(env, "dev-k", chunk, "targets/")
        assert on_disk < chunks  # really killed mid-download

        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)[0]["state"] == "active"
        served_second = chunks_served(env, "dev-k", chunk, "targets/") - served_first
        assert served_second <= chunks - on_disk + 8  # only what was missing (+ a window)
        with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
            active = store.active("digits")
            assert active is not None and active.sha256 == release.sha256
            store.verify(active)
