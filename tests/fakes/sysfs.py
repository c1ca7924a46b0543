"""A fake sysfs / procfs tree builder for sensor tests (injected through SensorSettings paths).

Each ``add_*`` writes the files a real kernel driver exposes, with the kernel's units, and
returns the directory so a test can then corrupt or delete single files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from edge_agent.config import HwmonRail, SensorSettings


class FakeSysfs:
    """A directory tree shaped like /sys and /proc under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = root / "proc"
        self.proc.mkdir(parents=True, exist_ok=True)
        self.rails: list[HwmonRail] = []
        self.throttled_path: Path | None = None

    def _write(self, directory: Path, files: dict[str, str | int | float]) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, value in files.items():
            (directory / name).write_text(f"{value}\n")
        return directory

    def add_thermal_zone(self, index: int, kind: str, millidegrees: str | int) -> Path:
        """``thermal_zoneN`` with ``type`` and ``temp`` (m°C)."""
        return self._write(
            self.root / "sys/class/thermal" / f"thermal_zone{index}",
            {"type": kind, "temp": millidegrees},
        )

    def add_power_supply(self, name: str, **files: str | int | float) -> Path:
        """``power_supply/<name>`` with the given attribute files (uV, uA, uW, %)."""
        return self._write(self.root / "sys/class/power_supply" / name, files)

    def add_battery(
        self,
        name: str = "BAT0",
        capacity: int = 80,
        status: str = "Discharging",
        voltage_uv: int = 3_900_000,
        current_ua: int = 500_000,
    ) -> Path:
        """A typical battery (no power_now: power is derived from V x I)."""
        return self.add_power_supply(
            name,
            type="Battery",
            capacity=capacity,
            status=status,
            voltage_now=voltage_uv,
            current_now=current_ua,
            present=1,
        )

    def add_hwmon_rail(
        self,
        name: str,
        chip: str,
        channel: int = 1,
        *,
        millivolts: int | str | None = None,
        milliamps: int | str | None = None,
        microwatts: int | str | None = None,
    ) -> Path:
        """An hwmon device with ``inN_input`` / ``currN_input`` / ``powerN_input``."""
        files: dict[str, str | int | float] = {"name": chip}
        if millivolts is not None:
            files[f"in{channel}_input"] = millivolts
        if milliamps is not None:
            files[f"curr{channel}_input"] = milliamps
        if microwatts is not None:
            files[f"power{channel}_input"] = microwatts
        directory = self._write(self.root / "sys/bus/i2c/devices" / chip / "hwmon/hwmon0", files)
        self.rails.append(
            HwmonRail(
                name=name,
                channel=channel,
                hwmon=str(self.root / "sys/bus/i2c/devices" / chip / "hwmon/hwmon*"),
            )
        )
        return directory

    def set_rpi_throttled(self, value: str) -> Path:
        """The firmware's ``get_throttled`` file (hex text, as the kernel writes it)."""
        path = self.root / "sys/devices/platform/soc/soc:firmware/get_throttled"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
        self.throttled_path = path
        return path

    def set_proc(
        self,
        loadavg: str = "0.50 0.40 0.30 1/123 4567",
        stat_cpu: tuple[int, ...] = (100, 0, 50, 800, 50, 0, 0, 0),
        cores: int = 4,
        mem_total_kb: int = 4_000_000,
        mem_available_kb: int = 3_000_000,
    ) -> None:
        """``/proc/loadavg``, ``/proc/stat`` and ``/proc/meminfo``."""
        (self.proc / "loadavg").write_text(loadavg + "\n")
        lines = ["cpu  " + " ".join(str(v) for v in stat_cpu)]
        lines += [f"cpu{i} " + " ".join(str(v // cores) for v in stat_cpu) for i in range(cores)]
        (self.proc / "stat").write_text("\n".join(lines) + "\nintr 0\n")
        (self.proc / "meminfo").write_text(
            f"MemTotal:       {mem_total_kb} kB\nMemFree:        1000 kB\n"
            f"MemAvailable:   {mem_available_kb} kB\n"
        )

    def settings(self) -> SensorSettings:
        """SensorSettings pointing at this tree."""
        return SensorSettings(
            thermal_zones=[str(self.root / "sys/class/thermal/thermal_zone*")],
            power_supplies=[str(self.root / "sys/class/power_supply/*")],
            power_rails=list(self.rails),
            rpi_throttled=str(self.throttled_path) if self.throttled_path else None,
        )

    def device_config(self, path: Path, device_class: str = "test-board") -> Path:
        """A device config YAML at ``path`` whose sensors are this tree (for an agent's
        ``device:``), so an agent reads the battery and zones a test made."""
        config = {"device_class": device_class, "sensors": self.settings().model_dump(mode="json")}
        path.write_text(yaml.safe_dump(config))
        return path
