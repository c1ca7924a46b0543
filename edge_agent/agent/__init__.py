"""The agent process that systemd runs: wiring, its MQTT link, telemetry, updates, reload.

``process.py`` wires the parts (:class:`~edge_agent.agent.process.Agent`); ``models.py`` loads,
swaps and rolls back the served models; ``status.py`` builds the status document;
``pipelines.py`` and ``sampling.py`` start the pipelines and sample capture; ``lifecycle.py``
holds housekeeping and the signal/watchdog loop; ``link.py`` is the device's MQTT client and
command parsing; ``telemetry.py`` publishes telemetry; ``updates.py`` follows the registry and
rollouts; ``reload.py`` plans a SIGHUP; ``systemd.py`` speaks sd_notify.
Import the module you need: this package imports nothing, so a small tool (``systemd.notify``)
never pays for the whole agent.
"""

from __future__ import annotations

__all__: list[str] = []
