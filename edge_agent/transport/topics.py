"""The MQTT topic scheme, in one place. Everything else builds topics through this module.

::

    ea/v1/<device>/status        retained; last will "offline"; versions, active models, health
    ea/v1/<device>/telemetry     QoS 1; latency, throughput, system sensors
    ea/v1/<device>/drift         QoS 1; drift statistics per model and window
    ea/v1/<device>/samples       QoS 1; sampled inputs/outputs (chunked)
    ea/v1/<device>/rollout       QoS 1; rollout state transitions with reasons
    ea/v1/<device>/cmd           commands that cannot install anything unverified
    ea/v1/registry/notify        retained; newest timestamp version
    ea/v1/registry/req/<device>  chunk requests; answers on ea/v1/registry/resp/<device>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

PREFIX = "ea/v1"
REGISTRY = "registry"
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class DeviceChannel(str, Enum):
    """The per-device topics."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    DRIFT = "drift"
    SAMPLES = "samples"
    ROLLOUT = "rollout"
    CMD = "cmd"


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is safe inside a topic (no '/', '+', '#', not 'registry')."""
    if not _DEVICE_ID.match(device_id) or device_id == REGISTRY:
        raise ValueError(
            f"invalid device id {device_id!r}: use 1-64 letters, digits, '_' or '-', starting "
            "with a letter or digit (and not 'registry')"
        )
    return device_id


def device_topic(device_id: str, channel: DeviceChannel) -> str:
    """``ea/v1/<device>/<channel>``."""
    return f"{PREFIX}/{check_device_id(device_id)}/{channel.value}"


def all_devices(channel: DeviceChannel) -> str:
    """Subscription filter for one channel of every device (the monitor's view)."""
    return f"{PREFIX}/+/{channel.value}"


def registry_notify() -> str:
    """Retained: the registry's newest TUF timestamp version."""
    return f"{PREFIX}/{REGISTRY}/notify"


def registry_request(device_id: str) -> str:
    """Where a device asks the registry for metadata or target chunks."""
    return f"{PREFIX}/{REGISTRY}/req/{check_device_id(device_id)}"


def registry_response(device_id: str) -> str:
    """Where the registry answers that device."""
    return f"{PREFIX}/{REGISTRY}/resp/{check_device_id(device_id)}"


def registry_requests_filter() -> str:
    """Subscription filter for every device's requests (the registry server's view)."""
    return f"{PREFIX}/{REGISTRY}/req/+"


@dataclass(frozen=True)
class ParsedTopic:
    """What a received topic refers to."""

    device_id: str
    channel: str


def parse(topic: str) -> ParsedTopic | None:
    """Split a topic of this scheme into device and channel; None for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != PREFIX:
        return None
    if parts[2] == REGISTRY:
        if len(parts) == 5 and parts[3] in ("req", "resp") and _DEVICE_ID.match(parts[4]):
            return ParsedTopic(device_id=parts[4], channel=f"{REGISTRY}/{parts[3]}")
        return None
    if len(parts) != 4 or not _DEVICE_ID.match(parts[2]):
        return None
    if parts[3] not in {c.value for c in DeviceChannel}:
        return None
    return ParsedTopic(device_id=parts[2], channel=parts[3])
