"""The MQTT topic scheme, in one place. Everything else builds topics through this module.

::

    ea/v1/<device>/status        retained; last will "offline"; versions, active models, health
    ea/v1/<device>/telemetry     QoS 1; latency, throughput, system sensors
    ea/v1/<device>/drift         QoS 1; drift statistics per model and window
    ea/v1/<device>/samples       QoS 1; sampled inputs/outputs (chunked)
    ea/v1/<device>/rollout       QoS 1; rollout state transitions with reasons
    ea/v1/<device>/cmd           commands that cannot install anything unverified
    ea/v1/<device>/results/<p>   pipeline <p>'s results (JSON, QoS from its config)
    ea/v1/registry/notify        retained; newest timestamp version
    ea/v1/registry/req/<device>  chunk requests; answers on ea/v1/registry/resp/<device>
    ea/v1/monitor/alerts         the central monitor's alerts (firing / resolved), QoS 1

Shared subscriptions (``$share/<group>/<filter>``, MQTT 5 and Mosquitto >= 1.6 for 3.1.1 too)
let several monitor instances split one channel: :func:`shared` builds them, :func:`unshared`
gives the plain filter a received topic is matched against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edge_agent.names import DEVICE_ID, PIPELINE_NAME, SHARE_GROUP

PREFIX = "ea/v1"
REGISTRY = "registry"
MONITOR = "monitor"
SHARE = "$share"
RESULTS = "results"


class DeviceChannel(str, Enum):
    """The per-device topics."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    DRIFT = "drift"
    SAMPLES = "samples"
    ROLLOUT = "rollout"
    CMD = "cmd"


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is safe inside a topic (no '/', '+', '#', not 'registry').

    Raises :class:`~edge_agent.errors.InvalidNameError` (a ValueError) naming the rule.
    """
    return DEVICE_ID.check(device_id)


def device_topic(device_id: str, channel: DeviceChannel) -> str:
    """``ea/v1/<device>/<channel>``."""
    return f"{PREFIX}/{check_device_id(device_id)}/{channel.value}"


def all_devices(channel: DeviceChannel) -> str:
    """Subscription filter for one channel of every device (the monitor's view)."""
    return f"{PREFIX}/+/{channel.value}"


def device_results(device_id: str, pipeline: str) -> str:
    """``ea/v1/<device>/results/<pipeline>``: a pipeline's results (not a trust channel)."""
    PIPELINE_NAME.check(pipeline)
    return f"{PREFIX}/{check_device_id(device_id)}/{RESULTS}/{pipeline}"


def all_results(device_id: str = "+") -> str:
    """Subscription filter for every pipeline's results of one device (or of all: ``+``)."""
    device = device_id if device_id == "+" else check_device_id(device_id)
    return f"{PREFIX}/{device}/{RESULTS}/+"


def shared(group: str, topic_filter: str) -> str:
    """``$share/<group>/<filter>``: the broker hands each message to one member of ``group``.

    Brokers do not send retained messages to shared subscriptions, so retained channels
    (``status``) are subscribed to plainly by every instance.
    """
    SHARE_GROUP.check(group)
    return f"{SHARE}/{group}/{topic_filter}"


def unshared(topic_filter: str) -> str:
    """The plain filter inside ``$share/<group>/<filter>`` (any other filter unchanged)."""
    if topic_filter.startswith(SHARE + "/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return topic_filter


def monitor_alerts() -> str:
    """Where the central monitor publishes alerts (JSON, QoS 1, not retained)."""
    return f"{PREFIX}/{MONITOR}/alerts"


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
        if len(parts) == 5 and parts[3] in ("req", "resp") and DEVICE_ID.matches(parts[4]):
            return ParsedTopic(device_id=parts[4], channel=f"{REGISTRY}/{parts[3]}")
        return None
    if len(parts) != 4 or not DEVICE_ID.matches(parts[2]):
        return None
    if parts[3] not in {c.value for c in DeviceChannel}:
        return None
    return ParsedTopic(device_id=parts[2], channel=parts[3])
