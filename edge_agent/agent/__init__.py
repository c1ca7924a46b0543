"""The agent process that systemd runs: wiring, its MQTT link, telemetry, updates, reload.

``process.py`` wires the parts (:class:`~edge_agent.agent.process.Agent`); ``link.py`` is the
device's MQTT client and command parsing; ``telemetry.py`` publishes status and telemetry;
``updates.py`` follows the registry and rollouts; ``reload.py`` plans a SIGHUP; ``systemd.py``
speaks sd_notify. Import the module you need: this package imports nothing, so a small tool
(``systemd.notify``) never pays for the whole agent.
"""

from __future__ import annotations

__all__: list[str] = []
