"""What the demo runs: the agent's config and the simulated fleet's settings.

The agent gets short intervals (status and telemetry every 2 s, a quick shadow check) so a
release goes live within seconds; drift windows of one loop of the video
(``episodes.drift_settings``) and capture on drift. The simulated fleet runs on a clock
720 times real time from 04:00 with a share of solar-battery devices nearly empty, so
the night and the morning (saving mode in, then out once recharged) happen in the first
minute; its drift
episodes start after the rollout, whose gates would otherwise hold a wave back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.demo import episodes
from edge_agent.demo.broker import free_port
from edge_agent.demo.samples import DigitsVideo, samples_dir

if TYPE_CHECKING:
    from edge_agent.config import BrokerSettings
    from edge_agent.fleet.simulator import SimulatorSettings

DEVICE = "demo-cam-1"
MODEL = "digits32"
GROUP = "demo"
SIM_PREFIX = "sim"
TIME_SCALE = 720.0
"""Simulated seconds per real second in the simulated fleet (a day in two minutes)."""


def agent_config(
    work: Path, broker: BrokerSettings, broker_kind: str, video: DigitsVideo, root: Path
) -> dict[str, Any]:
    """The real agent's config: follow the registry, a pipeline on the looping video.

    ``broker`` is how the agent logs in (on the secured broker: user ``DEVICE``, its password
    file and the demo's CA), written into the config as a provisioned device has it.
    """
    return {
        "device_id": DEVICE,
        "device": "auto",
        "store_dir": str(work / "agent"),
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "broker": {
            **broker.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
            "keepalive_s": 10,
            # the embedded broker (amqtt) speaks MQTT 3.1.1 only
            "protocol": "5" if broker_kind == "mosquitto" else "3.1.1",
        },
        "registry": {
            "root": str(root),
            "models": [MODEL],
            "group": GROUP,
            "check_interval_s": 10,
        },
        "telemetry": {
            "latency": {"report_interval_s": 2},
            "drift": episodes.drift_settings(len(video.labels)),
        },
        "serving": {
            "status_interval_seconds": 2,
            "gates": {
                "shadow_seconds": 2,
                "min_samples": 10,
                "watch_seconds": 10,
                # a shared, busy machine makes one version's p95 jumpy
                "max_latency_ratio": 3.0,
            },
        },
        "pipelines": [
            {
                "name": "door-cam",
                "model": MODEL,
                "source": {
                    "type": "video",
                    "path": str(video.path),
                    "loop": True,
                    "realtime": True,
                },
                "postprocess": {
                    "type": "classification",
                    "labels_file": str(samples_dir() / MODEL / "labels.txt"),
                },
                "sinks": [
                    {"type": "jsonl", "path": str(work / "results.jsonl")},
                    {"type": "mqtt"},
                ],
            }
        ],
        "capture": {
            "enabled": True,
            "random_rate": 0.02,
            "on_drift": {"rate": 0.5, "max_samples": 40},
        },
    }


def fleet_settings(devices: int) -> SimulatorSettings:
    """The simulated agents beside the real one."""
    from edge_agent.config import PowerPolicySettings
    from edge_agent.fleet.simulator import SimulatorSettings
    from edge_agent.fleet.simulator.drift import DriftEpisodes
    from edge_agent.fleet.simulator.power import SupplySettings

    return SimulatorSettings(
        devices=devices,
        model=MODEL,
        group=GROUP,
        prefix=SIM_PREFIX,
        report_interval_s=0.5,
        inferences_per_report=20,
        check_interval_s=3,
        time_scale=TIME_SCALE,
        start_hour=4.0,
        supply=SupplySettings(battery_fraction=0.45, start_pct=(26.0, 30.0)),
        # resume at 30 % rather than the default 35 %: the morning comes ~10 s sooner
        power_policy=PowerPolicySettings(
            enabled=True, normal_fps=10.0, reduced_fps=2.0, battery_recover_pct=30.0
        ),
        drift=DriftEpisodes(fraction=0.2, start_s=(8 * 3600.0, 9 * 3600.0), duration_s=3 * 3600.0),
    )
