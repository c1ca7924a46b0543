"""Trust: TUF repository tooling for operators and the device's TUF client over MQTT.

Operators: :class:`OperatorRepository` (init, refresh, rotate keys) and :func:`add_model`.
Devices: :class:`DeviceUpdater` (refresh signed metadata, download verified targets), fed by
:class:`MqttFetcher` and resumable downloads. MQTT carries bytes; only TUF decides what is trusted.
"""

from __future__ import annotations

from edge_agent.trust.device import DeviceUpdater, provision
from edge_agent.trust.fetcher import MqttFetcher
from edge_agent.trust.publish import add_model, repo_status
from edge_agent.trust.repository import OperatorRepository, RoleKeys
from edge_agent.trust.targets import ModelRelease
from edge_agent.trust.transfer import FetchSettings

__all__ = [
    "DeviceUpdater",
    "FetchSettings",
    "ModelRelease",
    "MqttFetcher",
    "OperatorRepository",
    "RoleKeys",
    "add_model",
    "provision",
    "repo_status",
]
