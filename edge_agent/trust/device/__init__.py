"""The device's TUF client: refresh signed metadata and download verified targets over MQTT.

:class:`DeviceUpdater` (``client.py``) drives python-tuf's ngclient with :class:`MqttFetcher`
(``fetcher.py``) over a :class:`RegistryLink` (``link.py``); target files arrive as resumable
chunked transfers (``transfer.py``, ``partial.py``, ``journal.py``) that survive power loss.
The newest verified root is the device's own durable trust anchor (``anchor.py``), and
ngclient's files are written crash-safely (``durable.py``): a crash never rolls trust back.
"""

from __future__ import annotations

from edge_agent.trust.device.client import DeviceUpdater, provision
from edge_agent.trust.device.fetcher import MqttFetcher

__all__ = ["DeviceUpdater", "MqttFetcher", "provision"]
