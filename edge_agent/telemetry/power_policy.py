"""Power-aware policy: lower the frame rate or switch to a lighter model on low battery or heat.

:func:`decide` is a pure function of the previous state, the latest battery / temperature
readings and the policy settings, so it is tested without a clock, sensors or runtime. Each
trigger has a hysteresis band: battery saving starts at ``battery_low_pct`` (while
discharging) and ends only once the battery is back at ``battery_recover_pct``; thermal
throttling starts at ``temp_high_c`` and ends at ``temp_recover_c``. Charging alone does not end
saving: a weak panel at dawn reports "charging" while it gives less than the normal load
draws, so leaving on it drained the battery back into saving within minutes (the flapping
``tests/unit/telemetry/test_power_policy.py`` replays from the simulator's solar model).
Readings that are missing keep the current state for that trigger (an unreadable sensor
neither starts nor ends a mode).
The caller (the daemon) applies the decision and reports it when ``changed`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.config import PowerPolicySettings

Mode = Literal["normal", "saving"]


@dataclass(frozen=True)
class PowerState:
    """Which triggers are active."""

    battery_saving: bool = False
    thermal_throttling: bool = False

    @property
    def mode(self) -> Mode:
        """``saving`` while any trigger is active."""
        return "saving" if self.battery_saving or self.thermal_throttling else "normal"


@dataclass(frozen=True)
class PowerDecision:
    """What to run with now, and whether that changed."""

    state: PowerState
    fps: float | None
    """Target frame rate; None: unlimited / unchanged."""
    model_variant: str | None
    """Model to use instead of the configured one; None: the configured one."""
    changed: bool
    reasons: tuple[str, ...]

    def report(self) -> dict[str, Any]:
        """JSON-able record of a switch."""
        return {
            "mode": self.state.mode,
            "battery_saving": self.state.battery_saving,
            "thermal_throttling": self.state.thermal_throttling,
            "fps": self.fps,
            "model_variant": self.model_variant,
            "reasons": list(self.reasons),
        }


def decide(
    state: PowerState,
    battery_pct: float | None,
    charging: bool | None,
    temp_c: float | None,
    policy: PowerPolicySettings,
) -> PowerDecision:
    """The next power state and what it means for frame rate and model variant. Pure."""
    reasons: list[str] = []
    battery_saving = state.battery_saving
    if policy.enabled and battery_pct is not None:
        if not battery_saving and battery_pct <= policy.battery_low_pct and not charging:
            battery_saving = True
            reasons.append(f"battery {battery_pct:.0f}% <= {policy.battery_low_pct:.0f}%")
        elif battery_saving and battery_pct >= policy.battery_recover_pct:
            battery_saving = False  # not on "charging" alone: see the module docstring
            reasons.append(
                f"battery {battery_pct:.0f}% >= {policy.battery_recover_pct:.0f}%"
                + (" (charging)" if charging else "")
            )
    thermal = state.thermal_throttling
    if policy.enabled and temp_c is not None:
        if not thermal and temp_c >= policy.temp_high_c:
            thermal = True
            reasons.append(f"temperature {temp_c:.1f} °C >= {policy.temp_high_c:.1f} °C")
        elif thermal and temp_c <= policy.temp_recover_c:
            thermal = False
            reasons.append(f"temperature {temp_c:.1f} °C <= {policy.temp_recover_c:.1f} °C")
    if not policy.enabled:
        battery_saving = thermal = False
    new = PowerState(battery_saving, thermal)
    saving = new.mode == "saving"
    fps = policy.reduced_fps if saving and policy.reduced_fps else policy.normal_fps
    variant = policy.light_variant if saving else None
    return PowerDecision(new, fps, variant, new != state, tuple(reasons))
