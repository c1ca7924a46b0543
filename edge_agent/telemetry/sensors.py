"""System sensors: CPU, memory, disk, thermal zones, power supplies, hwmon rails, RPi throttling.

Everything is read from procfs / sysfs paths (the sysfs ones come from the device config's
:class:`~edge_agent.config.SensorSettings`), and everything is optional: a missing file,
an unreadable one or a malformed value yields ``None`` (or the entry is skipped), never an
exception, so one odd driver cannot take telemetry down. Units are converted once, here:
sysfs m°C -> °C, uV / uA / uW -> V / A / W, hwmon mV / mA / uW -> V / A / W.

CPU usage needs two readings: pass the previous snapshot as ``previous`` to get ``usage_pct``.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import HwmonRail, SensorSettings

RPI_THROTTLE_BITS = {
    0: "under_voltage",
    1: "freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "under_voltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
"""Bits of the Raspberry Pi firmware's get_throttled value (vcgencmd get_throttled)."""


def _read_text(path: Path | str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(4096).strip()
    except OSError:
        return None


def _read_number(path: Path | str, scale: float = 1.0) -> float | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = float(text.split()[0]) * scale
    except (ValueError, IndexError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _dirs(patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        found.extend(Path(p) for p in sorted(glob.glob(pattern)) if os.path.isdir(p))
    return found


@dataclass
class CpuTimes:
    """Cumulative jiffies from /proc/stat (busy and total)."""

    busy: float
    total: float


@dataclass
class ThermalZone:
    """One thermal zone."""

    name: str
    zone: str
    temp_c: float


@dataclass
class PowerSupply:
    """One Linux power_supply (battery, UPS, mains, USB)."""

    name: str
    type: str | None
    status: str | None
    online: bool | None
    capacity_pct: float | None
    voltage_v: float | None
    current_a: float | None
    power_w: float | None


@dataclass
class PowerRail:
    """One hwmon rail (INA219, INA3221, ...)."""

    name: str
    voltage_v: float | None
    current_a: float | None
    power_w: float | None


@dataclass
class SystemSnapshot:
    """What the sensors said at ``timestamp`` (unix seconds); absent sensors are None/empty."""

    timestamp: float
    cpu_count: int | None = None
    load_1: float | None = None
    load_5: float | None = None
    load_15: float | None = None
    cpu_usage_pct: float | None = None
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    memory_used_pct: float | None = None
    disks: list[dict[str, Any]] = field(default_factory=list)
    thermal: list[ThermalZone] = field(default_factory=list)
    power_supplies: list[PowerSupply] = field(default_factory=list)
    power_rails: list[PowerRail] = field(default_factory=list)
    rpi_throttled: dict[str, Any] | None = None
    cpu_times: CpuTimes | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (raw CPU jiffies left out), with derived power and battery fields."""
        data = asdict(self)
        data.pop("cpu_times")
        data["power_w"] = self.power_w
        data["battery_pct"] = self.battery_pct
        data["max_temp_c"] = self.max_temp_c
        return data

    @property
    def max_temp_c(self) -> float | None:
        """Hottest thermal zone (°C)."""
        return max((z.temp_c for z in self.thermal), default=None)

    def _battery(self) -> PowerSupply | None:
        return next(
            (
                s
                for s in self.power_supplies
                if (s.type or "").lower() == "battery" and s.capacity_pct is not None
            ),
            None,
        )

    @property
    def battery_pct(self) -> float | None:
        """Capacity of the first battery with a capacity reading."""
        battery = self._battery()
        return battery.capacity_pct if battery else None

    @property
    def battery_charging(self) -> bool | None:
        """True when the battery reports Charging / Full, None when unknown."""
        battery = self._battery()
        if battery is None or battery.status is None:
            return None
        return battery.status.lower() in ("charging", "full")

    @property
    def power_w(self) -> float | None:
        """Best estimate of the device's power draw: the first rail, else a discharging battery."""
        for rail in self.power_rails:
            if rail.power_w is not None:
                return rail.power_w
        battery = self._battery()
        if (
            battery
            and battery.power_w is not None
            and (battery.status or "").lower() == "discharging"
        ):
            return battery.power_w
        return None


def read_cpu(proc: Path) -> tuple[int | None, tuple[float | None, ...], CpuTimes | None]:
    """(cores, (load 1/5/15), cumulative CPU times) from procfs."""
    loads: tuple[float | None, ...] = (None, None, None)
    text = _read_text(proc / "loadavg")
    if text:
        try:
            loads = tuple(float(v) for v in text.split()[:3])
        except ValueError:
            loads = (None, None, None)
        if len(loads) != 3:
            loads = (None, None, None)
    times = None
    stat = _read_text(proc / "stat")
    cores = None
    if stat:
        lines = stat.splitlines()
        cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit()) or None
        parts = lines[0].split()
        if parts and parts[0] == "cpu":
            try:
                values = [float(v) for v in parts[1:9]]
                idle = values[3] + (values[4] if len(values) > 4 else 0.0)
                times = CpuTimes(busy=sum(values) - idle, total=sum(values))
            except (ValueError, IndexError):
                times = None
    return cores, loads, times


def read_memory(proc: Path) -> tuple[int | None, int | None]:
    """(total, available) bytes from /proc/meminfo."""
    text = _read_text(proc / "meminfo")
    if not text:
        return None, None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        try:
            fields[key.strip()] = int(rest.split()[0]) * 1024
        except (ValueError, IndexError):
            continue
    return fields.get("MemTotal"), fields.get("MemAvailable")


def read_disk(path: str) -> dict[str, Any] | None:
    """Total / free bytes of the filesystem holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used_pct = 100.0 * (total - free) / total if total else None
    return {"path": path, "total_bytes": total, "free_bytes": free, "used_pct": used_pct}


def read_thermal(patterns: list[str]) -> list[ThermalZone]:
    """Thermal zones with a readable temperature (m°C -> °C)."""
    zones = []
    for directory in _dirs(patterns):
        temp = _read_number(directory / "temp", 0.001)
        if temp is None:
            continue
        zones.append(
            ThermalZone(_read_text(directory / "type") or directory.name, directory.name, temp)
        )
    return zones


def read_power_supply(directory: Path) -> PowerSupply | None:
    """One power_supply directory; None when it has nothing readable."""
    capacity = _read_number(directory / "capacity")
    voltage = _read_number(directory / "voltage_now", 1e-6)
    current = _read_number(directory / "current_now", 1e-6)
    power = _read_number(directory / "power_now", 1e-6)
    online_value = _read_number(directory / "online")
    status = _read_text(directory / "status")
    kind = _read_text(directory / "type")
    if power is None and voltage is not None and current is not None:
        power = abs(voltage * current)
    if capacity is not None and not 0.0 <= capacity <= 100.0:
        capacity = None
    if all(v is None for v in (capacity, voltage, current, power, online_value, status)):
        return None
    return PowerSupply(
        directory.name,
        kind,
        status,
        None if online_value is None else online_value > 0,
        capacity,
        voltage,
        current,
        power,
    )


def read_rail(rail: HwmonRail) -> PowerRail | None:
    """One hwmon rail (first directory matching the glob); None when nothing is readable."""
    directories = _dirs([rail.hwmon])
    if not directories:
        return None
    d, n = directories[0], rail.channel
    voltage = _read_number(d / f"in{n}_input", 1e-3)
    current = _read_number(d / f"curr{n}_input", 1e-3)
    power = _read_number(d / f"power{n}_input", 1e-6)
    if power is None and voltage is not None and current is not None:
        power = abs(voltage * current)
    if voltage is None and current is None and power is None:
        return None
    return PowerRail(rail.name, voltage, current, power)


def decode_rpi_throttled(text: str | None) -> dict[str, Any] | None:
    """Decode the firmware's get_throttled value (hex, with or without 0x)."""
    if text is None:
        return None
    try:
        value = int(text.strip().split("=")[-1], 16)
    except ValueError:
        return None
    flags: dict[str, Any] = {
        name: bool(value >> bit & 1) for bit, name in RPI_THROTTLE_BITS.items()
    }
    flags["raw"] = hex(value)
    return flags


def read_sensors(
    settings: SensorSettings,
    *,
    proc: Path = Path("/proc"),
    disk_paths: tuple[str, ...] = ("/",),
    previous: SystemSnapshot | None = None,
) -> SystemSnapshot:
    """Read every sensor the settings point at. Never raises for missing or bad sensors."""
    cores, loads, times = read_cpu(proc)
    usage = None
    if previous is not None and previous.cpu_times is not None and times is not None:
        total = times.total - previous.cpu_times.total
        if total > 0:
            usage = max(0.0, min(100.0, 100.0 * (times.busy - previous.cpu_times.busy) / total))
    mem_total, mem_available = read_memory(proc)
    mem_used = (
        100.0 * (mem_total - mem_available) / mem_total
        if mem_total and mem_available is not None
        else None
    )
    supplies = [s for s in (read_power_supply(d) for d in _dirs(settings.power_supplies)) if s]
    rails = [r for r in (read_rail(rail) for rail in settings.power_rails) if r]
    throttled = (
        decode_rpi_throttled(_read_text(settings.rpi_throttled)) if settings.rpi_throttled else None
    )
    return SystemSnapshot(
        timestamp=time.time(),
        cpu_count=cores,
        load_1=loads[0],
        load_5=loads[1],
        load_15=loads[2],
        cpu_usage_pct=usage,
        memory_total_bytes=mem_total,
        memory_available_bytes=mem_available,
        memory_used_pct=mem_used,
        disks=[d for d in (read_disk(p) for p in disk_paths) if d],
        thermal=read_thermal(settings.thermal_zones),
        power_supplies=supplies,
        power_rails=rails,
        rpi_throttled=throttled,
        cpu_times=times,
    )


class SensorReader:
    """The device's one sensor reading, shared by everything that acts on it.

    Telemetry, the power policy, upload conditions and ``/metrics`` read it here, from the
    device config's paths, so they never disagree about the battery. A reading younger than
    ``max_age_s`` is reused, an older one replaced by a fresh read (CPU usage is measured
    between consecutive readings). Thread-safe.
    """

    def __init__(
        self,
        settings: SensorSettings,
        *,
        max_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        proc: Path = Path("/proc"),
    ) -> None:
        self.settings = settings
        self._max_age_s = max_age_s
        self._clock = clock
        self._proc = proc
        self._lock = threading.Lock()
        self._last: SystemSnapshot | None = None
        self._read_at = 0.0

    @property
    def last(self) -> SystemSnapshot | None:
        """The latest reading (None before the first)."""
        return self._last

    def read(self) -> SystemSnapshot:
        """A reading at most ``max_age_s`` old."""
        with self._lock:
            now = self._clock()
            if self._last is None or now - self._read_at >= self._max_age_s:
                self._last = read_sensors(self.settings, proc=self._proc, previous=self._last)
                self._read_at = now
            return self._last
