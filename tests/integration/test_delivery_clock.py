"""The device clock at 1970 and at +10 years, for real: ``models pull`` under libfaketime.

libfaketime (Debian/Ubuntu package ``faketime``) is preloaded into the ``edge-agent`` process
only, so the interpreter, ngclient's expiry checks and the update state machine all read the
fake clock while the broker and the registry keep the real one. Expired metadata must be
refused with a reason that names the clock, the active model must keep serving, and the
refusal must be published on the device's rollout topic.
"""

from __future__ import annotations

import json
import queue
import subprocess
import time
from pathlib import Path

import pytest

from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.transport.client import MqttClient
from tests.fakes.delivery_env import delivery_env, pull_command, watch_rollout
from tests.fixtures.faketime import LIBFAKETIME, faked_environment
from tests.fixtures.mosquitto import Broker

pytestmark = pytest.mark.mqtt

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
TEN_YEARS_S = 10 * 365 * 86400


@pytest.mark.skipif(
    LIBFAKETIME is None, reason="libfaketime is not installed (apt-get install faketime)"
)
@pytest.mark.parametrize(
    ("faketime", "reason_parts", "clock_reads"),
    [
        ("+10y", ("expired", "clock"), lambda now: now + TEN_YEARS_S - 86400),
        ("@1970-01-02 00:00:00", ("1970-01-02", "cannot be right", "NTP"), lambda _now: 86400.0),
    ],
    ids=["plus-10-years", "1970"],
)
def test_refuses_to_update_on_a_clock_it_cannot_trust(
    tmp_path: Path, mosquitto: Broker, faketime: str, reason_parts: tuple[str, ...], clock_reads
):
    store_dir = tmp_path / "device"
    with delivery_env(tmp_path, mosquitto.url) as env:
        env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
        command = pull_command(env, store_dir, "dev-clock", "--model", "digits")
        first = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")

        with MqttClient(mosquitto.url, "clock-watcher") as watcher:
            watcher.connect()
            events = watch_rollout(watcher, "dev-clock")
            faked = faked_environment(faketime)  # timeouts and backoff stay real
            now = time.time()
            second = subprocess.run(command, capture_output=True, text=True, timeout=60, env=faked)
            published = json.loads(events.get(timeout=10).payload)

        assert second.returncode == 1, second.stderr
        (outcome,) = json.loads(second.stdout)
        assert outcome["state"] == "failed" and outcome["version"] is None
        for part in reason_parts:
            assert part in outcome["reason"], outcome["reason"]
        assert outcome["timestamp"] >= clock_reads(now)  # the process really read the fake clock
        if faketime.startswith("@"):
            assert outcome["timestamp"] < 2 * 86400
        assert published["state"] == "failed" and published["reason"] == outcome["reason"]
        with pytest.raises(queue.Empty):
            events.get(timeout=0.2)  # nothing else happened: no download, no activation

    with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
        active = store.active("digits")
        assert active is not None and active.version == 1
        store.verify(active)
        assert [m.version for m in store.list()] == [1]
    downloads = list((StoreLayout(store_dir).trust_downloads).iterdir())
    assert all("digits_int8" not in p.name for p in downloads), downloads
