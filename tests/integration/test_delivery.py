"""Model delivery end to end: repository -> registry on real Mosquitto -> store -> runtime."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import FetchSettings
from edge_agent.delivery.update import ShadowVerdict, UpdateState
from edge_agent.fleet.registry import RegistrySettings
from edge_agent.runtime import load_model
from tests.fakes.delivery_env import FAST, chunks_served, delivery_env, watch_rollout
from tests.fixtures.mosquitto import Broker

pytestmark = pytest.mark.mqtt


def test_published_model_is_delivered_verified_activated_run_and_rolled_back(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
):
    with delivery_env(tmp_path, mosquitto.url) as env:
        first = env.publish(models_dir / "digits" / "digits_fp32.tflite", version="1.0.0")
        device = env.device()
        events = watch_rollout(device.client, device.device_id)
        manager = device.manager()

        outcome = manager.update("digits")

        assert outcome.state is UpdateState.ACTIVE, outcome.reason
        active = device.store.active("digits")
        assert active is not None and active.version == first.release == 1
        assert active.path.suffix == ".tflite" and active.manifest["version"] == "1.0.0"
        test_set = np.load(models_dir / "digits" / "test_set.npz")
        backend = load_model(active.path)
        try:
            name = backend.inputs[0].name
            hits = sum(
                int(
                    np.argmax(
                        backend.run({name: test_set["x"][i : i + 1]})[backend.outputs[0].name]
                    )
                    == test_set["y"][i]
                )
                for i in range(40)
            )
        finally:
            backend.close()
        assert hits >= 36  # the delivered bytes are the trained model, not just any file
        states = [json.loads(events.get(timeout=5).payload)["state"] for _ in range(4)]
        assert states == ["downloading", "verified", "staged", "active"]

        env.publish(models_dir / "digits" / "digits_int8.onnx", version="1.1.0")
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        assert device.store.active("digits").version == 2  # type: ignore[union-attr]
        assert device.store.previous("digits").version == 1  # type: ignore[union-attr]
        restored = device.store.rollback("digits")
        assert restored.version == 1
        load_model(restored.path).close()


def test_twenty_devices_pull_concurrently(tmp_path: Path, mosquitto: Broker, models_dir: Path):
    with delivery_env(tmp_path, mosquitto.url) as env:
        release = env.publish(models_dir / "digits" / "digits_fp32.tflite")
        devices = [env.device(f"dev-{i:02d}") for i in range(20)]
        outcomes: dict[str, str] = {}

        def pull(device_index: int) -> None:
            device = devices[device_index]
            outcomes[device.device_id] = device.manager().update("digits").state.value

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes == {d.device_id: "active" for d in devices}
        for device in devices:
            assert device.store.active("digits").sha256 == release.sha256  # type: ignore[union-attr]
        chunks = -(-release.length // FAST.chunk_bytes)
        for device in devices:  # every device fetched each chunk about once
            served = chunks_served(env, device.device_id, FAST.chunk_bytes, "targets/")
            assert chunks <= served <= chunks + FAST.window


def test_greedy_device_is_rate_limited_and_still_completes(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
):
    limited = RegistrySettings(rate_per_device=150, burst_per_device=4, notify_poll_s=0.2)
    greedy = FetchSettings(chunk_bytes=2048, window=32, chunk_timeout_s=1.0, deadline_s=30)
    with delivery_env(tmp_path, mosquitto.url, settings=limited) as env:
        release = env.publish(models_dir / "digits" / "digits_fp32.tflite")
        device = env.device(settings=greedy)
        outcome = device.manager().update("digits")
        assert outcome.state is UpdateState.ACTIVE, outcome.reason
        assert env.server.refused["rate-limited"] > 0
        assert device.store.active("digits").sha256 == release.sha256  # type: ignore[union-attr]


def test_registry_announces_new_versions_retained(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
):
    import queue

    from edge_agent.transport import topics
    from edge_agent.transport.client import MqttClient

    with delivery_env(tmp_path, mosquitto.url) as env:
        before = env.repo.timestamp_version()
        env.publish(models_dir / "digits" / "digits_fp32.tflite")
        box: queue.Queue[bytes] = queue.Queue()
        with MqttClient(mosquitto.url, "late-listener") as listener:
            listener.connect()
            listener.subscribe(topics.registry_notify(), lambda m: box.put(m.payload))
            seen = 0
            while seen <= before:
                seen = json.loads(box.get(timeout=5))["timestamp_version"]
            assert seen == env.repo.timestamp_version()


def test_shadow_check_refusal_rejects_the_version_for_good(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
):
    with delivery_env(tmp_path, mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.tflite", version="1.0.0")
        device = env.device()
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        env.publish(models_dir / "digits" / "digits_int8.onnx", version="1.1.0")
        refuse = device.manager(shadow_check=lambda _m: ShadowVerdict(False, "disagrees 40%"))
        outcome = refuse.update("digits")
        assert outcome.state is UpdateState.FAILED and "disagrees 40%" in outcome.reason
        assert device.store.active("digits").version == 1  # type: ignore[union-attr]
        again = device.manager().update("digits")
        assert again.state is UpdateState.FAILED and "never reinstalled" in again.reason
        assert device.store.active("digits").version == 1  # type: ignore[union-attr]
