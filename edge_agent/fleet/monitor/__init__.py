"""The central monitor: ingest, store, alerts, dashboard, JSON API and Prometheus metrics.

It ingests the fleet's MQTT reports (see docs/monitor.md).

Library use (rollout controller, demo)::

    monitor = Monitor("sqlite:///var/lib/edge-agent/monitor.db", "mqtt://broker:1883").start()
    monitor.version_health("digits", "2", window_s=300).error_rate
    monitor.stop()
"""

from __future__ import annotations

from edge_agent.fleet.monitor.alerts import AlertRules
from edge_agent.fleet.monitor.health import Health
from edge_agent.fleet.monitor.ingest import IngestSettings
from edge_agent.fleet.monitor.monitor import Monitor, MonitorSettings
from edge_agent.fleet.monitor.store import StoreError, open_store

__all__ = [
    "AlertRules",
    "Health",
    "IngestSettings",
    "Monitor",
    "MonitorSettings",
    "StoreError",
    "open_store",
]
