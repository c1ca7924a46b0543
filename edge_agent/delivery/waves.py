"""Which wave of a rollout a device belongs to: a stable hash of its id. Pure functions.

A device's *bucket* is the first 8 bytes of ``sha256(salt, NUL, device_id)`` read as a
fraction in [0, 1). Waves are cumulative percentages (``[5, 25, 100]``): a device is in the
first wave whose percentage exceeds ``bucket * 100``. The same id always lands in the same wave
(no state, no randomness, the same answer on the device and on the controller), and over many
ids the proportions follow the percentages. The salt is the device group by default, so the
canaries of a group stay the same devices from one rollout to the next unless the operator
picks another salt.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

from edge_agent.errors import ConfigError

_SCALE = float(1 << 64)


def bucket(device_id: str, salt: str) -> float:
    """The device's fixed position in [0, 1) for ``salt``."""
    digest = hashlib.sha256(f"{salt}\0{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def check_waves(waves: Sequence[float]) -> list[float]:
    """``waves`` if they are increasing percentages ending at 100; ConfigError otherwise."""
    values = [float(w) for w in waves]
    if not values:
        raise ConfigError("a rollout needs at least one wave; e.g. --waves 5,25,100")
    if any(not 0 < w <= 100 for w in values):
        raise ConfigError(f"wave percentages must be in (0, 100], got {values}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"wave percentages must increase (cumulative), got {values}")
    if values[-1] != 100:
        raise ConfigError(f"the last wave must be 100 (the whole group), got {values[-1]:g}")
    return values


def wave_of(device_id: str, waves: Sequence[float], salt: str) -> int:
    """Index of the wave ``device_id`` is in (0 = first wave)."""
    position = bucket(device_id, salt) * 100.0
    for index, percent in enumerate(waves):
        if position < percent:
            return index
    return len(waves) - 1  # unreachable with a last wave of 100; kept for safety


def partition(device_ids: Iterable[str], waves: Sequence[float], salt: str) -> list[list[str]]:
    """The devices of each wave (sorted), e.g. for the controller's gates and status table."""
    result: list[list[str]] = [[] for _ in waves]
    for device_id in device_ids:
        result[wave_of(device_id, waves, salt)].append(device_id)
    return [sorted(ids) for ids in result]


def devices_through(
    device_ids: Iterable[str], waves: Sequence[float], salt: str, opened: int
) -> list[str]:
    """Devices in the first ``opened`` waves (those told to run the new release)."""
    return sorted(d for d in device_ids if wave_of(d, waves, salt) < opened)
