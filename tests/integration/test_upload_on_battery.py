"""Upload conditions read the device config's sensors, the ones telemetry and the power policy
use: a real agent, a real broker, a battery and a mains supply in a sysfs tree made here."""

from __future__ import annotations

import threading

from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes.sysfs import FakeSysfs
from tests.fixtures.wait import wait_for


def test_only_on_mains_waits_on_the_configured_battery_then_uploads_on_mains(
    mosquitto, models_dir, tmp_path
):
    """Regression: the uploader read /sys/class/power_supply itself, ignoring the device
    config's `sensors.power_supplies`: 80 sample messages went out on battery."""
    from edge_agent.agent.process import Agent
    from edge_agent.config import AgentConfig
    from tests.fixtures.video import make_digits_video

    sysfs = FakeSysfs(tmp_path / "sysfs")
    sysfs.add_battery(capacity=60, status="Discharging")
    mains = sysfs.add_power_supply("AC", type="Mains", online=0)
    device = sysfs.device_config(tmp_path / "board.yaml")
    video = make_digits_video(tmp_path / "digits.avi", count=12)
    config = AgentConfig.model_validate(
        {
            "device_id": "cam-10",
            "device": str(device),
            "store_dir": str(tmp_path / "state"),
            "broker": {"url": mosquitto.url},
            "models": [
                {"name": "digits32", "path": str(models_dir / "digits32" / "digits32_int8.tflite")}
            ],
            "pipelines": [
                {
                    "name": "door-cam",
                    "model": "digits32",
                    "source": {"type": "video", "path": str(video.path)},
                    "sinks": [{"type": "jsonl", "path": str(tmp_path / "results.jsonl")}],
                }
            ],
            "capture": {
                "enabled": True,
                "random_rate": 1.0,
                "upload": {"only_on_mains": True},
            },
        }
    )
    received: list[bytes] = []
    lock = threading.Lock()

    def on_sample(message) -> None:
        with lock:
            received.append(message.payload)

    watcher = MqttClient(mosquitto.url, "watcher-cam-10")
    watcher.connect()
    watcher.subscribe(topics.device_topic("cam-10", DeviceChannel.SAMPLES), on_sample, qos=1)
    agent = Agent(config)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        assert pipeline.wait_finished(60)
        assert agent.capture is not None and agent.capture.flush(10)
        uploader = agent.uploader
        assert uploader is not None
        # The decision event: the uploader looked at the battery and said why it waits.
        assert wait_for(lambda: uploader.waiting_for == "on battery (only_on_mains)", 30), (
            uploader.stats()
        )
        assert uploader.samples_sent == 0
        with lock:
            assert received == []
        assert agent.telemetry is not None
        snapshot = agent.telemetry.sensors.read()
        assert snapshot.battery_pct == 60  # telemetry sees the same battery
        (mains / "online").write_text("1\n")  # the charger is plugged in
        assert wait_for(lambda: uploader.samples_sent == 12, 60), uploader.stats()
        assert wait_for(lambda: len(received) > 0, 10)
    finally:
        agent.stop()
        watcher.close()
