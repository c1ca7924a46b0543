"""Simulated power supplies: a battery with a solar panel, or mains. Pure: no clock, no I/O.

A battery device's charge follows an energy balance over simulated time: a solar panel gives
``solar_peak_w`` at noon along a half sine between sunrise and sunset (times a per-day cloud
factor), the device draws ``idle_w`` plus ``inference_j`` per inference at the frame rate the
power policy allows. Temperature is the ambient (coolest at dawn, warmest mid-afternoon) plus
heating by the power drawn. A mains device has no battery and only the load and temperature.

What the device does with these readings is the agent's own code: the power policy
(:func:`edge_agent.telemetry.power_policy.decide`) decides on ``battery_pct``, ``charging`` and
``temp_c``; energy per inference comes from
:func:`edge_agent.telemetry.latency.energy_per_inference_j`. So a simulated battery fleet
enters and leaves the saving mode exactly where real agents with these readings would.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Literal

from edge_agent.errors import ConfigError

Supply = Literal["battery", "mains"]
DAY_S = 86400.0


@dataclass(frozen=True)
class SupplySettings:
    """The power supply of the simulated devices (units in the names)."""

    battery_fraction: float = 0.0
    """Share of devices on a battery with a solar panel (spread over the fleet); the rest are
    on mains."""
    capacity_wh: float = 40.0
    solar_peak_w: float = 8.0
    """Panel output at solar noon on a clear day."""
    sunrise_h: float = 6.0
    sunset_h: float = 20.0
    idle_w: float = 1.5
    """What a device draws doing nothing (SoC, radio, camera)."""
    inference_j: float = 0.03
    """Energy one inference costs on top of idle."""
    start_pct: tuple[float, float] = (40.0, 90.0)
    """Initial charge of battery devices, drawn uniformly in this range."""
    ambient_c: tuple[float, float] = (12.0, 30.0)
    """Coolest (at dawn) and warmest (at 15:00) ambient temperature."""
    heating_c_per_w: float = 6.0
    """Degrees above ambient per watt drawn (enclosure and heat sink)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.battery_fraction <= 1.0:
            raise ConfigError("simulator battery_fraction must be in [0, 1]")
        if self.capacity_wh <= 0 or self.solar_peak_w < 0 or self.idle_w < 0:
            raise ConfigError("simulator capacity_wh must be > 0, solar_peak_w and idle_w >= 0")
        if not 0 <= self.sunrise_h < self.sunset_h <= 24:
            raise ConfigError("simulator sunrise_h and sunset_h must satisfy 0 <= rise < set <= 24")
        low, high = self.start_pct
        if not 0.0 <= low <= high <= 100.0:
            raise ConfigError("simulator start_pct must be a (low, high) range within 0..100")


@dataclass(frozen=True)
class PowerReading:
    """What the device's sensors read after a step (what a real agent's sysfs gives)."""

    battery_pct: float | None
    charging: bool | None
    power_w: float
    """Power drawn by the device."""
    solar_w: float
    temp_c: float


@dataclass(frozen=True)
class PowerSupply:
    """The state of one device's supply: battery charge, today's clouds."""

    supply: Supply
    charge_wh: float = 0.0
    capacity_wh: float = 1.0
    clouds: float = 1.0
    """Share of clear-sky solar output reaching the panel today (drawn per day)."""
    day: int = -1
    last: PowerReading | None = field(default=None, compare=False)

    @property
    def battery_pct(self) -> float | None:
        """Charge in percent (None on mains)."""
        if self.supply != "battery":
            return None
        return 100.0 * self.charge_wh / self.capacity_wh


def new_supply(rng: random.Random, settings: SupplySettings, on_battery: bool) -> PowerSupply:
    """A device's supply: a battery charged within ``start_pct``, or mains."""
    if on_battery:
        pct = rng.uniform(*settings.start_pct)
        return PowerSupply("battery", settings.capacity_wh * pct / 100.0, settings.capacity_wh)
    return PowerSupply("mains")


def hour_of_day(sim_time: float) -> float:
    """Hour (0..24) of a simulated unix time, in UTC."""
    return (sim_time % DAY_S) / 3600.0


def solar_w(hour: float, settings: SupplySettings, clouds: float = 1.0) -> float:
    """Panel output at ``hour``: a half sine between sunrise and sunset, times the clouds."""
    if not settings.sunrise_h < hour < settings.sunset_h:
        return 0.0
    phase = (hour - settings.sunrise_h) / (settings.sunset_h - settings.sunrise_h)
    return settings.solar_peak_w * clouds * math.sin(math.pi * phase)


def ambient_c(hour: float, settings: SupplySettings) -> float:
    """Ambient temperature: coolest at sunrise, warmest at 15:00 (a cosine in between)."""
    low, high = settings.ambient_c
    warmest = 15.0
    coolest = settings.sunrise_h
    if coolest <= hour <= warmest:
        phase = (hour - coolest) / (warmest - coolest)
    else:
        since = (hour - warmest) % 24.0
        phase = 1.0 - since / (24.0 - (warmest - coolest))
    return low + (high - low) * (1.0 - math.cos(math.pi * phase)) / 2.0


def step(
    supply: PowerSupply,
    sim_time: float,
    dt_s: float,
    fps: float,
    settings: SupplySettings,
    rng: random.Random,
) -> PowerSupply:
    """The supply after ``dt_s`` simulated seconds of running inference at ``fps``.

    Charging means the panel gives more than the device draws (and the battery is not full),
    as a charge controller's status would say.
    """
    day = int(sim_time // DAY_S)
    clouds = supply.clouds
    if day != supply.day:
        clouds = rng.uniform(0.6, 1.0)
    hour = hour_of_day(sim_time)
    load = settings.idle_w + settings.inference_j * max(fps, 0.0)
    temp = ambient_c(hour, settings) + settings.heating_c_per_w * load
    if supply.supply != "battery":
        reading = PowerReading(None, None, round(load, 3), 0.0, round(temp, 1))
        return replace(supply, clouds=clouds, day=day, last=reading)
    sun = solar_w(hour, settings, clouds)
    charge = supply.charge_wh + (sun - load) * dt_s / 3600.0
    charge = min(max(charge, 0.0), supply.capacity_wh)
    charging = sun > load and charge < supply.capacity_wh
    pct = 100.0 * charge / supply.capacity_wh
    reading = PowerReading(round(pct, 2), charging, round(load, 3), round(sun, 3), round(temp, 1))
    return replace(supply, charge_wh=charge, clouds=clouds, day=day, last=reading)


def spread(count: int, fraction: float, reverse: bool = False) -> set[int]:
    """``round(fraction * count)`` indices spread evenly over ``range(count)``. Pure.

    Exact counts (not a coin per device) keep a small demo fleet from drawing no battery at
    all; ``reverse`` spreads from the other end, so two traits mix rather than coincide.
    """
    chosen = round(fraction * count)
    indices = {int(i * count / chosen) for i in range(chosen)} if chosen else set()
    return {count - 1 - i for i in indices} if reverse else indices
