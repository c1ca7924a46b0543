"""The states a device reports, defined once: device status, update and swap states.

The monitor, the alerts, the rollout gates and the simulator compare against these enums (or
the frozen sets built from them) instead of retyping the strings.
"""

from __future__ import annotations

from enum import Enum


class DeviceState(str, Enum):
    """The ``state`` of a device's retained status (``offline`` is its last will)."""

    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class UpdateState(str, Enum):
    """States of one model update (``edge_agent.delivery.update``)."""

    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFIED = "verified"
    STAGED = "staged"
    ACTIVE = "active"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class SwapState(str, Enum):
    """States of a hot swap on the device (``edge_agent.serving.swap``)."""

    SHADOW = "shadow"
    REJECTED = "rejected"
    ACTIVE = "active"
    ROLLED_BACK = "rolled_back"
    WATCH_PASSED = "watch_passed"


ROLLOUT_STATES = frozenset(s.value for s in UpdateState) | frozenset(s.value for s in SwapState)
"""Every state a device publishes on its rollout topic."""
FAILED_STATES = frozenset(
    {UpdateState.FAILED.value, SwapState.REJECTED.value, SwapState.ROLLED_BACK.value}
)
"""Rollout states that mean a release did not work on a device (alerts, rollout gates)."""
GOOD_STATES = frozenset({SwapState.ACTIVE.value, SwapState.WATCH_PASSED.value})
"""Rollout states that mean a release works on a device."""
