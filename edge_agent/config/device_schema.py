"""Config of a class of hardware (``device_configs/<class>.yaml``): runtime and sensor locations."""

from __future__ import annotations

from pydantic import Field

from edge_agent.config.base import StrictModel
from edge_agent.config.runtime_schema import RuntimeSettings
from edge_agent.names import DeviceClass


class HwmonRail(StrictModel):
    """A power rail measured by an hwmon driver (INA219 on UPS HATs, INA3221 on Jetson)."""

    name: str = Field(description="Name reported in telemetry, e.g. `VDD_IN` or `ups`.")
    hwmon: str = Field(
        description="Glob of the hwmon directory, e.g. "
        "`/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon*`."
    )
    channel: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Channel number N of `inN_input` (mV), `currN_input` (mA), "
        "`powerN_input` (uW).",
    )


class SensorSettings(StrictModel):
    """Where the system sensors of this device class live. Every path may be absent."""

    thermal_zones: list[str] = Field(
        default_factory=lambda: ["/sys/class/thermal/thermal_zone*"],
        description="Globs of thermal zone directories (each has `type` and `temp` in m°C).",
    )
    power_supplies: list[str] = Field(
        default_factory=lambda: ["/sys/class/power_supply/*"],
        description="Globs of Linux power_supply directories (battery, UPS, mains).",
    )
    power_rails: list[HwmonRail] = Field(
        default_factory=list, description="hwmon power rails to read (voltage, current, power)."
    )
    rpi_throttled: str | None = Field(
        default=None,
        description="Raspberry Pi firmware throttling flags file (under-voltage, throttled, "
        "frequency capped), e.g. `/sys/devices/platform/soc/soc:firmware/get_throttled`.",
    )


class DeviceConfig(StrictModel):
    """A class of hardware (`device_configs/<class>.yaml`)."""

    device_class: DeviceClass = Field(
        description="Short name of the hardware class, e.g. `rpi5-coral`; used in rollout groups.",
    )
    description: str = Field(default="", description="What hardware and OS this file is for.")
    runtime: RuntimeSettings = Field(
        default_factory=RuntimeSettings, description="Inference runtime settings."
    )
    sensors: SensorSettings = Field(default_factory=SensorSettings, description="Sensor locations.")
