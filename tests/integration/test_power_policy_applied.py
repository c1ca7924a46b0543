"""The power policy acts: a real agent on a looping video, a battery in a sysfs tree made here,
a real broker. Low battery -> paced frames and the light variant, swapped in for the pipeline's
model through the swap gates; recharged -> the model's own version back. A light variant that
fails the gates is refused and the model keeps serving."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes.sysfs import FakeSysfs
from tests.fixtures.wait import wait_for


def processed_in(pipeline, seconds: float) -> int:
    before = pipeline.processed
    time.sleep(seconds)
    return pipeline.processed - before


class Watcher:
    """The device's power_policy telemetry events and swap events, as the monitor gets them."""

    def __init__(self, url: str, device: str) -> None:
        self.power: list[dict[str, Any]] = []
        self.swaps: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.client = MqttClient(url, f"watcher-{device}")
        self.client.connect()
        self.client.subscribe(
            topics.device_topic(device, DeviceChannel.TELEMETRY), self._on_telemetry
        )
        self.client.subscribe(topics.device_topic(device, DeviceChannel.ROLLOUT), self._on_swap)

    def _on_telemetry(self, message) -> None:
        document = json.loads(message.payload)["data"]  # the outbox's envelope
        if document.get("event") == "power_policy":
            with self._lock:
                self.power.append(document)

    def _on_swap(self, message) -> None:
        with self._lock:
            self.swaps.append(json.loads(message.payload))

    def find(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self.power if kind == "power" else self.swaps)
        return [e for e in events if all(e.get(k) == v for k, v in fields.items())]


def agent_config(
    tmp_path: Path, mosquitto, models_dir: Path, light: Path, serve_light: bool = True
) -> tuple[Any, Path]:
    from edge_agent.config import AgentConfig
    from tests.fixtures.video import make_digits_video

    sysfs = FakeSysfs(tmp_path / "sysfs")
    battery = sysfs.add_battery(capacity=80, status="Discharging")
    device = sysfs.device_config(tmp_path / "board.yaml")
    video = make_digits_video(tmp_path / "digits.avi", count=30)
    digits = models_dir / "digits32"
    config = AgentConfig.model_validate(
        {
            "device_id": "cam-11",
            "device": str(device),
            "store_dir": str(tmp_path / "state"),
            "broker": {"url": mosquitto.url},
            # the default latency gate: both versions are timed warm on the same replayed
            # inputs (it once rested on the 1-2 frames paced to 2/s in the shadow window)
            # (a reload's new file keeps the light variant off for its watch window)
            "serving": {"gates": {"shadow_seconds": 0.5, "watch_seconds": 2}},
            "models": [
                {"name": "digits32", "path": str(digits / "digits32_fp32.tflite")},
                {"name": "digits32-light", "path": str(light), "serve": serve_light},
            ],
            "pipelines": [
                {
                    "name": "door-cam",
                    "model": "digits32",
                    "source": {"type": "video", "path": str(video.path), "loop": True},
                    "sinks": [{"type": "jsonl", "path": str(tmp_path / "results.jsonl")}],
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
    return config, battery


def test_low_battery_paces_pipelines_and_swaps_in_the_light_variant_then_back(
    mosquitto, models_dir, tmp_path
):
    """Regression: decide() returned a frame rate and a light variant that no code applied;
    at 10 % battery a pipeline kept running at ~175 results/s on the configured model. The light
    variant was then a separately served model that no health gate checked."""
    from edge_agent.agent.process import Agent

    light = models_dir / "digits32" / "digits32_int8.tflite"
    # `serve: false`: the light file is loaded when swapped in, not kept loaded as a model too
    config, battery = agent_config(tmp_path, mosquitto, models_dir, light, serve_light=False)
    watcher = Watcher(mosquitto.url, "cam-11")
    agent = Agent(config)
    agent.start()
    try:
        assert agent.models.names() == ["digits32"]
        (pipeline,) = agent.pipelines
        served = pipeline.served
        assert wait_for(lambda: pipeline.processed > 200, 30)  # the swap gates' replay buffer
        assert served.name == "digits32" and served.active.version == "1"
        assert pipeline.target_fps is None
        assert processed_in(pipeline, 1.0) > 10  # unpaced: as fast as the model runs

        (battery / "capacity").write_text("10\n")
        assert wait_for(lambda: served.active.version == "1+light", 15), pipeline.stats()
        assert served.active.path == light and pipeline.served is served
        assert pipeline.target_fps == 2
        time.sleep(0.6)  # the frame in hand finishes on the old pace
        assert processed_in(pipeline, 3.0) <= 2 * 3 + 1
        assert agent.telemetry is not None and agent.telemetry.power.mode == "saving"
        assert wait_for(lambda: watcher.find("power", mode="saving", variant_swap=None), 15)
        saving = watcher.find("power", mode="saving", variant_swap=None)[0]
        assert saving["fps"] == 2 and saving["model_variant"] == "digits32-light"
        assert saving["reasons"] == ["battery 10% <= 25%"]
        # the swap gates judged it, and both the telemetry and the swap events say so
        assert wait_for(lambda: watcher.find("power", variant_swap="active"), 15)
        (swapped,) = watcher.find("power", variant_swap="active")
        assert swapped["model"] == "digits32" and swapped["model_variant"] == "digits32-light"
        assert swapped["reasons"][0].startswith("light variant digits32-light active: passed:")
        assert wait_for(lambda: watcher.find("swap", version="1+light", state="active"), 15)
        shadow = watcher.find("swap", version="1+light", state="shadow")[0]
        assert shadow["reason"] == "shadow check started (battery 10% <= 25%)"
        active = watcher.find("swap", version="1+light", state="active")[0]
        assert active["evidence"]["compared"] >= 20 and active["evidence"]["agreement"] >= 0.98

        (battery / "status").write_text("Charging\n")
        time.sleep(1.0)  # charging alone no longer ends saving (it flapped at dawn)
        assert served.active.version == "1+light" and agent.telemetry.power.mode == "saving"
        (battery / "capacity").write_text("40\n")
        assert wait_for(lambda: served.active.version == "1", 15), pipeline.stats()
        assert pipeline.target_fps is None
        assert processed_in(pipeline, 1.0) > 10
        assert wait_for(lambda: watcher.find("power", mode="normal", variant_swap=None), 15)
        normal = watcher.find("power", mode="normal", variant_swap=None)[0]
        assert normal["reasons"] == ["battery 40% >= 35% (charging)"]
        assert wait_for(lambda: watcher.find("power", variant_swap="restored"), 15)
        (restored,) = watcher.find("power", variant_swap="restored")
        assert restored["reasons"] == ["back on v1: battery 40% >= 35% (charging)"]
        back = watcher.find("swap", version="1", state="active")
        assert back and back[0]["reason"].startswith("power saving ended")
        assert not watcher.find("swap", state="rolled_back")  # a restore is not a failure
    finally:
        agent.stop()
        watcher.client.close()
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in records} == {"digits32"}
    versions = [r["version"] for r in records]
    assert "1+light" in versions  # results say which version made them
    assert versions[-1] == "1"


@pytest.mark.parametrize("light_kind", ["another model's shape", "a broken file"])
def test_a_light_variant_that_fails_the_gates_is_refused_and_the_model_keeps_serving(
    light_kind, mosquitto, models_dir, tmp_path
):
    """The light variant goes through the same gates as a delivered release: one that answers
    for other inputs (8x8 grey digits for a 32x32 colour model) or whose file broke on disk
    after start-up is refused, reported with the reason, and not tried again at every check."""
    from edge_agent.agent.process import Agent

    light = tmp_path / "light.tflite"
    light.write_bytes((models_dir / "digits" / "digits_fp32.tflite").read_bytes())
    config, battery = agent_config(tmp_path, mosquitto, models_dir, light)
    watcher = Watcher(mosquitto.url, "cam-11")
    agent = Agent(config)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        served = pipeline.served
        assert wait_for(lambda: pipeline.processed > 200, 30)
        if light_kind == "a broken file":
            light.write_bytes(b"not a model" * 100)
        (battery / "capacity").write_text("10\n")
        assert wait_for(lambda: watcher.find("power", variant_swap="rejected"), 20)
        (rejected,) = watcher.find("power", variant_swap="rejected")
        assert rejected["model"] == "digits32" and rejected["model_variant"] is None
        assert rejected["mode"] == "saving" and rejected["fps"] == 2
        why = rejected["reasons"][0]
        assert why.startswith("light variant digits32-light refused: ")
        expected = "cannot load light.tflite" if light_kind == "a broken file" else "error rate"
        assert expected in why, why
        assert wait_for(lambda: watcher.find("swap", version="1+light", state="rejected"), 15)
        swap = watcher.find("swap", version="1+light", state="rejected")[0]
        assert expected in swap["reason"]
        # the model keeps serving its own version, paced, and the light is not retried
        assert served.active.version == "1" and pipeline.target_fps == 2
        before = pipeline.processed
        time.sleep(2.0)  # ten policy checks
        assert pipeline.processed > before and served.active.version == "1"
        assert len(watcher.find("power", variant_swap="rejected")) == 1
        assert len(watcher.find("swap", state="shadow")) <= 1
    finally:
        agent.stop()
        watcher.client.close()


def test_a_config_reload_while_saving_swaps_the_new_file_in_and_saving_goes_on(
    mosquitto, models_dir, tmp_path
):
    """Regression: a reload that changed the model's file while the light variant served
    computed the next version as int("1+light") and kept the old model with an error."""
    from edge_agent.agent.process import Agent

    light = models_dir / "digits32" / "digits32_int8.tflite"
    config, battery = agent_config(tmp_path, mosquitto, models_dir, light)
    config_path = tmp_path / "agent.yaml"
    config_path.write_text(config.model_dump_json())  # JSON is YAML
    agent = Agent(config, config_path=config_path)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        served = pipeline.served
        assert wait_for(lambda: pipeline.processed > 200, 30)
        (battery / "capacity").write_text("10\n")
        assert wait_for(lambda: served.active.version == "1+light", 15), pipeline.stats()
        fresh = tmp_path / "digits32_v2.tflite"
        fresh.write_bytes((models_dir / "digits32" / "digits32_fp32.tflite").read_bytes())
        document = json.loads(config_path.read_text())
        document["models"][0]["path"] = str(fresh)
        config_path.write_text(json.dumps(document))
        agent.reload()
        # the new file replaces the light variant as version 2, judged against version 1 (not
        # the light variant); once its watch window passed, saving puts its light back on
        assert wait_for(lambda: served.active.version == "2", 20), served.active.version
        assert agent.host.controllers["digits32"].watching == "2"
        assert wait_for(lambda: served.active.version == "2+light", 20), served.active.version
        (battery / "capacity").write_text("40\n")
        assert wait_for(lambda: served.active.version == "2", 15), served.active.version
        assert served.active.path == fresh
    finally:
        agent.stop()
