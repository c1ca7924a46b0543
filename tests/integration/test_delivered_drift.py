"""The mission's loop on a delivered model: a release packaged with its drift profile is signed,
delivered over MQTT, installed whole, served, and its drift alarm reaches MQTT; after a hot swap
the new version is judged against its own profile. Real registry, broker, TUF and runtime."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from edge_agent.agent.process import Agent
from edge_agent.config import AgentConfig
from edge_agent.delivery.store import ModelStore
from edge_agent.runtime import load_model
from edge_agent.telemetry.profile import build_profile, load_profile, save_profile
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes.delivery_env import delivery_env


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def profile_of(model: Path, x: np.ndarray, path: Path) -> Path:
    backend = load_model(model)
    name = backend.inputs[0].name
    outputs = np.concatenate([next(iter(backend.run({name: row[None]}).values())) for row in x])
    save_profile(build_profile(x, outputs), path)
    return path


def test_a_delivered_release_brings_its_profile_and_raises_drift_alarms_on_mqtt(
    mosquitto, models_dir, tmp_path
):
    """Regression: only the model file was a signed target; the package's profile stayed behind
    and a delivered model was served without drift detection (no report ever reached MQTT)."""
    x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2).copy()
    fp32 = models_dir / "digits" / "digits_fp32.onnx"
    int8 = models_dir / "digits" / "digits_int8.onnx"
    shifted = (x * 0.25).astype(np.float32)  # a darker camera
    v1_profile = profile_of(fp32, x, tmp_path / "v1-profile.json")
    v2_profile = profile_of(int8, shifted, tmp_path / "v2-profile.json")
    alarms: list[dict] = []
    reports: list[dict] = []
    lock = threading.Lock()

    def on_drift(message) -> None:
        document = json.loads(message.payload)["data"]
        with lock:
            (alarms if document.get("event") == "drift_alarm" else reports).append(document)

    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(fp32, "digits", "1.0.0", profile=v1_profile)
        watcher = MqttClient(mosquitto.url, "watcher-dev-7")
        watcher.connect()
        watcher.subscribe(topics.device_topic("dev-7", DeviceChannel.DRIFT), on_drift)
        config = AgentConfig.model_validate(
            {
                "device_id": "dev-7",
                "device": "x86-generic",
                "store_dir": str(tmp_path / "state"),
                "broker": {"url": mosquitto.url},
                "registry": {
                    "root": str(env.root_json),
                    "models": ["digits"],
                    "chunk_bytes": 4096,
                    "check_interval_s": 10,
                },
                "serving": {
                    "gates": {
                        "shadow_seconds": 0.5,
                        "min_samples": 5,
                        "watch_seconds": 1,
                        "max_latency_ratio": 100,
                        "min_agreement": 0.0,
                    }
                },
                "telemetry": {"drift": {"sample_rate": 1.0, "window_size": 100, "min_window": 100}},
            }
        )
        agent = Agent(config)
        agent.start()
        try:
            wait_for(lambda: agent.models.get("digits") is not None, 60, "the delivery")
            assert agent.updates is not None
            store = agent.updates.store
            # a first version is served during its shadow check, then activated in the store
            wait_for(lambda: store.active("digits") is not None, 10, "the activation")
            installed = store.active("digits")
            assert installed is not None and installed.profile is not None
            assert load_profile(installed.profile).to_dict() == load_profile(v1_profile).to_dict()
            served = agent.models.get("digits")
            assert served is not None
            assert agent.telemetry is not None and "digits" in agent.telemetry.drift
            (entry,) = agent.status().models
            assert entry.variant == "digits_fp32.onnx"  # the status says which file it runs
            for row in x[:200]:  # in distribution: reports, no alarm
                served.run({"input": row[None]})
            wait_for(lambda: len(reports) >= 1, 30, "a drift report on MQTT")
            with lock:
                assert alarms == []
            for row in shifted[:200]:  # the bar: an alarm within 200 shifted inputs
                served.run({"input": row[None]})
            wait_for(lambda: any(a["to"] == "alarm" for a in alarms), 30, "a drift alarm")
            with lock:
                raised = next(a for a in alarms if a["to"] == "alarm")
            assert raised["model"] == "digits"

            # v2 ships a profile made on the darker camera: once active, drift is judged by it
            env.publish(int8, "digits", "1.1.0", profile=v2_profile)
            stop = threading.Event()

            def traffic() -> None:
                i = 0
                while not stop.is_set():
                    model = agent.models.get("digits")
                    if model is not None:
                        model.run({"input": shifted[i % len(shifted)][None]})
                    i += 1
                    time.sleep(0.002)

            thread = threading.Thread(target=traffic, daemon=True)
            thread.start()
            try:
                wait_for(lambda: served.active.version == "2", 60, "v2 to pass the gates")
            finally:
                stop.set()
                thread.join()
            expected = load_profile(v2_profile).to_dict()

            def judged_by_v2() -> bool:
                assert agent.telemetry is not None
                monitor = agent.telemetry.drift.get("digits")
                return monitor is not None and monitor.detector.reference.to_dict() == expected

            wait_for(judged_by_v2, 10, "drift to be judged against v2's own profile")
        finally:
            agent.stop()
            watcher.close()
    with ModelStore(tmp_path / "state" / "models", readonly=True) as store:
        v2 = store.get("digits", 2)
        assert v2 is not None and v2.profile is not None
        store.verify(v2)  # model and profile blobs re-hash to what was signed
