"""read_sensors on this machine's real /proc and /sys (whatever sensors it has)."""

from __future__ import annotations

import json

from edge_agent.config import SensorSettings
from edge_agent.telemetry.sensors import read_sensors


def test_real_host_sensors_read_without_errors() -> None:
    settings = SensorSettings(rpi_throttled="/sys/devices/platform/soc/soc:firmware/get_throttled")
    first = read_sensors(settings)
    sum(i * i for i in range(200_000))  # some CPU time between the two readings
    second = read_sensors(settings, previous=first)
    data = json.loads(json.dumps(second.as_dict()))
    assert data["cpu_count"] and data["cpu_count"] >= 1
    assert data["memory_total_bytes"] > 0 and 0 <= data["memory_used_pct"] <= 100
    assert data["disks"][0]["total_bytes"] > 0
    assert data["cpu_usage_pct"] is not None and 0 <= data["cpu_usage_pct"] <= 100
    for zone in data["thermal"]:
        assert -50 < zone["temp_c"] < 150
