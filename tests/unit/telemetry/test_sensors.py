from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.config import HwmonRail, SensorSettings
from edge_agent.telemetry.sensors import SensorReader, decode_rpi_throttled, read_sensors
from tests.fakes.sysfs import FakeSysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    fake = FakeSysfs(tmp_path)
    fake.set_proc()
    return fake


def test_reads_every_sensor_kind_with_units_converted(sysfs: FakeSysfs) -> None:
    sysfs.add_thermal_zone(0, "cpu-thermal", 61234)
    sysfs.add_thermal_zone(1, "gpu-thermal", 55000)
    sysfs.add_battery(capacity=42, voltage_uv=3_700_000, current_ua=1_000_000)
    sysfs.add_power_supply("ups", type="UPS", status="Discharging", power_now=7_500_000)
    sysfs.add_hwmon_rail("VDD_IN", "1-0040", channel=1, millivolts=5080, milliamps=1200)
    sysfs.set_rpi_throttled("0x50005")
    snap = read_sensors(sysfs.settings(), proc=sysfs.proc, disk_paths=(str(sysfs.root),))
    data = snap.as_dict()
    json.dumps(data)  # JSON-able
    assert {z["name"]: z["temp_c"] for z in data["thermal"]} == {
        "cpu-thermal": pytest.approx(61.234),
        "gpu-thermal": pytest.approx(55.0),
    }
    assert data["max_temp_c"] == pytest.approx(61.234)
    bat = next(s for s in data["power_supplies"] if s["name"] == "BAT0")
    assert bat["capacity_pct"] == 42 and bat["status"] == "Discharging"
    assert bat["voltage_v"] == pytest.approx(3.7) and bat["current_a"] == pytest.approx(1.0)
    assert bat["power_w"] == pytest.approx(3.7)
    ups = next(s for s in data["power_supplies"] if s["name"] == "ups")
    assert ups["power_w"] == pytest.approx(7.5)
    assert data["power_rails"] == [
        {
            "name": "VDD_IN",
            "voltage_v": pytest.approx(5.08),
            "current_a": pytest.approx(1.2),
            "power_w": pytest.approx(6.096),
        }
    ]
    assert data["power_w"] == pytest.approx(6.096)  # the rail wins over the battery
    assert data["battery_pct"] == 42
    flags = data["rpi_throttled"]
    assert flags["under_voltage"] and flags["throttled"] and flags["under_voltage_occurred"]
    assert not flags["freq_capped"] and flags["throttled_occurred"]
    assert data["load_1"] == 0.5 and data["cpu_count"] == 4
    assert data["memory_total_bytes"] == 4_000_000 * 1024
    assert data["memory_used_pct"] == pytest.approx(25.0)
    assert data["disks"][0]["total_bytes"] > 0


def test_hwmon_power_input_is_preferred_and_in_microwatts(sysfs: FakeSysfs) -> None:
    sysfs.add_hwmon_rail(
        "ups", "1-0041", channel=2, millivolts=5000, milliamps=1000, microwatts=4_800_000
    )
    snap = read_sensors(sysfs.settings(), proc=sysfs.proc)
    assert snap.power_rails[0].power_w == pytest.approx(4.8)


def test_absent_sensors_give_none_not_errors(tmp_path: Path) -> None:
    settings = SensorSettings(
        thermal_zones=[str(tmp_path / "nothing*")],
        power_supplies=[str(tmp_path / "no/*")],
        power_rails=[HwmonRail(name="x", hwmon=str(tmp_path / "none/hwmon*"))],
        rpi_throttled=str(tmp_path / "get_throttled"),
    )
    snap = read_sensors(settings, proc=tmp_path / "noproc", disk_paths=(str(tmp_path / "x"),))
    data = snap.as_dict()
    assert data["thermal"] == [] and data["power_supplies"] == [] and data["power_rails"] == []
    assert data["rpi_throttled"] is None and data["load_1"] is None
    assert data["memory_total_bytes"] is None and data["disks"] == []
    assert data["power_w"] is None and data["battery_pct"] is None


@pytest.mark.parametrize("garbage", ["", "hot", "1e999", "nan", "\x00\xff"])
def test_malformed_values_are_skipped(sysfs: FakeSysfs, garbage: str) -> None:
    sysfs.add_thermal_zone(0, "cpu", garbage)
    sysfs.add_thermal_zone(1, "ok", 40000)
    sysfs.add_battery(capacity=80)
    (sysfs.root / "sys/class/power_supply/BAT0/voltage_now").write_text(garbage)
    sysfs.add_hwmon_rail("rail", "1-0040", millivolts=garbage, milliamps=garbage)
    sysfs.set_rpi_throttled(garbage + "zz")  # "1e999" alone is valid hex
    (sysfs.proc / "loadavg").write_text(garbage)
    (sysfs.proc / "meminfo").write_text(garbage)
    (sysfs.proc / "stat").write_text(garbage)
    snap = read_sensors(sysfs.settings(), proc=sysfs.proc)
    assert [z.name for z in snap.thermal] == ["ok"]
    battery = snap.power_supplies[0]
    assert battery.voltage_v is None and battery.power_w is None and battery.capacity_pct == 80
    assert snap.power_rails == [] and snap.rpi_throttled is None
    assert snap.load_1 is None and snap.memory_total_bytes is None
    json.dumps(snap.as_dict())


def test_out_of_range_battery_capacity_is_dropped(sysfs: FakeSysfs) -> None:
    sysfs.add_battery(capacity=250)
    assert read_sensors(sysfs.settings(), proc=sysfs.proc).battery_pct is None


def test_unreadable_directory_entry_is_skipped(sysfs: FakeSysfs) -> None:
    zone = sysfs.add_thermal_zone(0, "cpu", 50000)
    (zone / "temp").unlink()
    (zone / "temp").mkdir()  # reading a directory fails with an OSError
    assert read_sensors(sysfs.settings(), proc=sysfs.proc).thermal == []


def test_cpu_usage_needs_a_previous_snapshot(sysfs: FakeSysfs) -> None:
    first = read_sensors(sysfs.settings(), proc=sysfs.proc)
    assert first.cpu_usage_pct is None
    sysfs.set_proc(stat_cpu=(200, 0, 100, 850, 50, 0, 0, 0))  # +150 busy, +50 idle
    second = read_sensors(sysfs.settings(), proc=sysfs.proc, previous=first)
    assert second.cpu_usage_pct == pytest.approx(75.0)


def test_battery_power_counts_only_while_discharging(sysfs: FakeSysfs) -> None:
    sysfs.add_battery(status="Charging")
    snap = read_sensors(sysfs.settings(), proc=sysfs.proc)
    assert snap.power_w is None and snap.battery_charging is True


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("0x1", "under_voltage"),
        ("4", "throttled"),
        ("throttled=0x80000", "soft_temp_limit_occurred"),
    ],
)
def test_decode_rpi_throttled_forms(text: str, flag: str) -> None:
    flags = decode_rpi_throttled(text)
    assert flags is not None and flags[flag]
    assert sum(bool(v) for k, v in flags.items() if k != "raw") == 1


def test_sensor_reader_shares_one_reading_until_it_is_too_old(sysfs: FakeSysfs) -> None:
    battery = sysfs.add_battery(capacity=50)
    now = [100.0]
    reader = SensorReader(sysfs.settings(), max_age_s=2.0, clock=lambda: now[0], proc=sysfs.proc)
    assert reader.last is None
    first = reader.read()
    (battery / "capacity").write_text("40\n")
    now[0] += 1.9
    assert reader.read() is first  # one reading for the policy, uploads and telemetry
    now[0] += 0.1
    fresh = reader.read()
    assert fresh.battery_pct == 40 and reader.last is fresh
    sysfs.set_proc(stat_cpu=(200, 0, 100, 850, 50, 0, 0, 0))
    now[0] += 2.0
    assert reader.read().cpu_usage_pct == pytest.approx(75.0)  # measured between readings
