"""The agent's /metrics as an operator scrapes it: a real agent, a real video pipeline, a
battery and a thermal zone in a sysfs tree made here, and Prometheus' own linter."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent.metrics import _update_state
from edge_agent.delivery.update import UpdateState
from edge_agent.telemetry.profile import build_profile, save_profile
from tests.fakes.sysfs import FakeSysfs


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def promtool_problems(text: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return (result.stdout + result.stderr).strip() if result.returncode else ""


def test_metrics_cover_requests_pipelines_drift_power_outbox_and_capture(models_dir, tmp_path):
    from edge_agent.agent.process import Agent
    from edge_agent.config import AgentConfig
    from tests.fixtures.video import make_digits_video

    sysfs = FakeSysfs(tmp_path / "sysfs")
    sysfs.add_battery(capacity=10, status="Discharging", voltage_uv=5_000_000, current_ua=1_000_000)
    sysfs.add_thermal_zone(0, "cpu-thermal", 61_500)
    device = sysfs.device_config(tmp_path / "board.yaml")
    # A reference profile of noise: the digits video is far from it, so drift is raised.
    rng = np.random.default_rng(0)
    reference = rng.random((200, 32, 32, 3)).astype(np.float32)
    profile = tmp_path / "profile.json"
    save_profile(build_profile(reference), profile)
    video = make_digits_video(tmp_path / "digits.avi", count=60)
    config = AgentConfig.model_validate(
        {
            "device_id": "cam-09",
            "device": str(device),
            "store_dir": str(tmp_path / "state"),
            "api": {"listen": "127.0.0.1:0"},
            "models": [
                {
                    "name": "digits32",
                    "path": str(models_dir / "digits32" / "digits32_int8.tflite"),
                    "profile": str(profile),
                }
            ],
            "pipelines": [
                {
                    "name": "door-cam",
                    "model": "digits32",
                    "source": {"type": "video", "path": str(video.path)},
                    "sinks": [{"type": "jsonl", "path": str(tmp_path / "results.jsonl")}],
                }
            ],
            "capture": {"enabled": True, "random_rate": 1.0},
            "telemetry": {
                "latency": {"report_interval_s": 1.0},
                "drift": {
                    "sample_rate": 1.0,
                    "window_size": 20,
                    "min_window": 20,
                    "raise_after": 1,
                },
                "power": {"enabled": True},
            },
        }
    )
    agent = Agent(config)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        assert pipeline.wait_finished(60)
        assert agent.capture is not None and agent.capture.flush(10)
        port = int(agent.api.address.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while True:  # the drift worker and the telemetry report run on their own threads
            text = scrape(port)
            values = samples(text)
            drift_raised = values.get(
                ("edge_agent_drift_alarm", (("model", "digits32"), ("signal", "input")))
            )
            if drift_raised == 1.0 and ("edge_agent_battery_charge_ratio", ()) in values:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    finally:
        agent.stop()

    assert promtool_problems(text) == ""
    door = (("model", "digits32"), ("pipeline", "door-cam"))
    assert values[("edge_agent_pipeline_frames_in_total", door)] == 60
    assert values[("edge_agent_pipeline_frames_processed_total", door)] == 60
    assert values[("edge_agent_pipeline_frames_dropped_total", door)] == 0
    assert values[("edge_agent_pipeline_errors_total", door)] == 0
    assert values[("edge_agent_pipeline_frames_per_second", door)] > 0
    ok = (("model", "digits32"), ("outcome", "ok"), ("version", "1"))
    assert values[("edge_agent_inferences_total", ok)] == 60
    one_model = (("model", "digits32"),)
    for family in ("latency", "queue", "compute"):
        assert values[(f"edge_agent_inference_{family}_seconds_count", one_model)] == 60
    assert values[("edge_agent_drift_severity", (("model", "digits32"), ("signal", "input")))] > 1
    assert values[("edge_agent_drift_windows_total", one_model)] >= 1
    assert values[("edge_agent_battery_charge_ratio", ())] == 0.1
    assert values[("edge_agent_battery_charging", ())] == 0
    assert values[("edge_agent_power_watts", ())] == 5.0  # 5 V x 1 A
    assert values[("edge_agent_power_saving", (("trigger", "battery"),))] == 1  # 10 % < 25 %
    assert values[("edge_agent_temperature_celsius", (("zone", "thermal_zone0:cpu-thermal"),))] == (
        61.5
    )
    captured = {
        dict(labels)["strategy"]: value
        for (name, labels), value in values.items()
        if name == "edge_agent_capture_samples_total"
    }
    assert sum(captured.values()) == 60 and captured["random"] > 0, captured  # each frame once
    assert ("edge_agent_outbox_queued_bytes", ()) in values
    assert ("edge_agent_outbox_capacity_bytes", ()) in values


def test_update_state_is_one_hot_over_every_state():
    text_free = {
        sample.labels["state"]: sample.value for sample in _update_state(UpdateState.STAGED).samples
    }
    assert set(text_free) == {state.value for state in UpdateState}
    assert text_free["staged"] == 1.0
    assert sum(text_free.values()) == 1.0


def test_promtool_flags_a_badly_named_counter():
    """The lint step is real: it fails on what Prometheus' conventions forbid."""
    bad = (
        "# HELP edge_agent_frames Frames.\n# TYPE edge_agent_frames counter\nedge_agent_frames 1\n"
    )
    assert "counter metrics should have" in promtool_problems(bad)
