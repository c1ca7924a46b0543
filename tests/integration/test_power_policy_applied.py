"""The power policy acts: a real agent on a looping video, a battery in a sysfs tree made here,
a real broker. Low battery -> paced frames and the light model; charging -> back."""

from __future__ import annotations

import json
import threading
import time

from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes.sysfs import FakeSysfs


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processed_in(pipeline, seconds: float) -> int:
    before = pipeline.processed
    time.sleep(seconds)
    return pipeline.processed - before


def test_low_battery_paces_pipelines_and_swaps_in_the_light_variant_then_back(
    mosquitto, models_dir, tmp_path
):
    """Regression: decide() returned a frame rate and a light variant that no code applied;
    at 10 % battery a pipeline kept running at ~175 results/s on the configured model."""
    from edge_agent.agent.process import Agent
    from edge_agent.config import AgentConfig
    from tests.fixtures.video import make_digits_video

    sysfs = FakeSysfs(tmp_path / "sysfs")
    battery = sysfs.add_battery(capacity=80, status="Discharging")
    device = sysfs.device_config(tmp_path / "board.yaml")
    video = make_digits_video(tmp_path / "digits.avi", count=30)
    results = tmp_path / "results.jsonl"
    digits = models_dir / "digits32"
    config = AgentConfig.model_validate(
        {
            "device_id": "cam-11",
            "device": str(device),
            "store_dir": str(tmp_path / "state"),
            "broker": {"url": mosquitto.url},
            "models": [
                {"name": "digits32", "path": str(digits / "digits32_fp32.tflite")},
                {"name": "digits32-light", "path": str(digits / "digits32_int8.tflite")},
            ],
            "pipelines": [
                {
                    "name": "door-cam",
                    "model": "digits32",
                    "source": {"type": "video", "path": str(video.path), "loop": True},
                    "sinks": [{"type": "jsonl", "path": str(results)}],
                }
            ],
            "telemetry": {
                "power": {
                    "enabled": True,
                    "battery_low_pct": 25,
                    "battery_recover_pct": 35,
                    "reduced_fps": 2,
                    "light_variant": "digits32-light",
                    "check_interval_s": 0.2,
                }
            },
        }
    )
    events: list[dict] = []
    lock = threading.Lock()

    def on_telemetry(message) -> None:
        document = json.loads(message.payload)["data"]  # the outbox's envelope
        if document.get("event") == "power_policy":
            with lock:
                events.append(document)

    watcher = MqttClient(mosquitto.url, "watcher-cam-11")
    watcher.connect()
    watcher.subscribe(topics.device_topic("cam-11", DeviceChannel.TELEMETRY), on_telemetry)
    agent = Agent(config)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        assert wait_for(lambda: pipeline.processed > 20, 30)
        assert pipeline.served.name == "digits32" and pipeline.target_fps is None
        assert processed_in(pipeline, 1.0) > 10  # unpaced: as fast as the model runs

        (battery / "capacity").write_text("10\n")
        assert wait_for(lambda: pipeline.served.name == "digits32-light", 15), pipeline.stats()
        assert pipeline.target_fps == 2
        time.sleep(0.6)  # the frame in hand finishes on the old pace
        assert processed_in(pipeline, 3.0) <= 2 * 3 + 1
        assert agent.telemetry is not None and agent.telemetry.power.mode == "saving"
        assert wait_for(lambda: any(e["mode"] == "saving" for e in events), 15)
        with lock:
            saving = next(e for e in events if e["mode"] == "saving")
        assert saving["fps"] == 2 and saving["model_variant"] == "digits32-light"
        assert saving["reasons"] == ["battery 10% <= 25%"]

        (battery / "status").write_text("Charging\n")
        assert wait_for(lambda: pipeline.served.name == "digits32", 15), pipeline.stats()
        assert pipeline.target_fps is None
        assert processed_in(pipeline, 1.0) > 10
        assert wait_for(lambda: any(e["mode"] == "normal" for e in events), 15)
    finally:
        agent.stop()
        watcher.close()
    models_used = [json.loads(line)["model"] for line in results.read_text().splitlines()]
    assert "digits32-light" in models_used  # results say which model made them
    assert models_used[-1] == "digits32"
