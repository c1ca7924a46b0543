"""Prometheus ``/metrics`` for the monitor: ingest counters, fleet gauges, per-device gauges.

Label cardinality is bounded: at most ``max_device_series`` devices get their own ``device``
label (those with firing alerts first, then offline ones, then by id), everything else is
folded into ``device="_other"`` (online: a count; battery: the minimum; temperature: the
maximum), and model versions beyond ``max_version_series`` fold into ``version="_other"``
(and their models into ``model="_other"`` when the model itself has no kept row, so a device
inventing model names adds one series, not one per name).
A 100,000-device fleet therefore costs the same few hundred series as a 500-device one.

The collector reads the store at scrape time (with a short cache), so several monitor
instances sharing one database expose the same fleet view; ingest counters are per instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.fleet.monitor.ingest import IngestStats
from edge_agent.fleet.monitor.queries import fleet_overview
from edge_agent.fleet.monitor.store import Store
from edge_agent.wire.states import DeviceState

OTHER = "_other"


def select_labelled(
    devices: Sequence[dict[str, Any]], cap: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(devices that get a label, the rest): alerting, then offline, then by id. Pure."""
    ordered = sorted(
        devices, key=lambda d: (-int(d.get("alerts") or 0), bool(d.get("online")), d["device_id"])
    )
    return ordered[:cap], ordered[cap:]


def fold_versions(versions: dict[str, dict[str, int]], cap: int) -> list[tuple[str, str, int]]:
    """(model, version, devices) rows, the most common ``cap`` kept, the rest summed. Pure.

    A folded version keeps its model label when that model has a kept row, else it goes to
    ``model="_other"``: at most ``2 * cap + 1`` rows, however many names devices invent.
    """
    rows = sorted(
        ((m, v, n) for m, vs in versions.items() for v, n in vs.items()), key=lambda r: -r[2]
    )
    kept = rows[:cap]
    kept_models = {m for m, _v, _n in kept}
    folded: dict[str, int] = {}
    for model, _version, count in rows[cap:]:
        label = model if model in kept_models else OTHER
        folded[label] = folded.get(label, 0) + count
    return kept + [(m, OTHER, n) for m, n in sorted(folded.items())]


class MonitorCollector(Collector):
    """Builds the metric families on each scrape."""

    def __init__(
        self,
        store: Store,
        stats: Callable[[], IngestStats],
        backlog: Callable[[], int],
        *,
        max_device_series: int = 200,
        max_version_series: int = 50,
        cache_s: float = 2.0,
    ) -> None:
        self.store = store
        self.stats = stats
        self.backlog = backlog
        self.max_device_series = max_device_series
        self.max_version_series = max_version_series
        self.cache_s = cache_s
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _overview(self) -> dict[str, Any]:
        now = time.time()
        if self._cached is None or now - self._cached[0] > self.cache_s:
            self._cached = (now, fleet_overview(self.store, now))
        return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        """Every family, freshly computed."""
        yield from self._ingest()
        yield from self._fleet(self._overview())

    def _ingest(self) -> Iterator[Metric]:
        s = self.stats()
        received = CounterMetricFamily(
            "edge_monitor_messages_received",
            "MQTT messages received, by channel",
            labels=["channel"],
        )
        for channel, count in sorted(s.received.items()):
            received.add_metric([channel], count)
        yield received
        dropped = CounterMetricFamily(
            "edge_monitor_messages_dropped",
            "Messages dropped as unusable, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(s.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "edge_monitor_records_stored", "Records stored for the first time", value=s.stored
        )
        yield CounterMetricFamily(
            "edge_monitor_records_duplicate",
            "Redelivered records already stored",
            value=s.duplicates,
        )
        yield CounterMetricFamily("edge_monitor_batches", "Write transactions", value=s.batches)
        yield CounterMetricFamily(
            "edge_monitor_write_errors", "Failed batch writes (retried)", value=s.write_errors
        )
        quarantined = CounterMetricFamily(
            "edge_monitor_dead_letters",
            "Messages kept as dead letters (not decodable, or refused by the database), by reason",
            labels=["reason"],
        )
        for reason, count in sorted(s.quarantined.items()):
            quarantined.add_metric([reason], count)
        yield quarantined
        yield CounterMetricFamily(
            "edge_monitor_records_capped",
            "Rows not stored: they named a model beyond the device's cap of distinct models",
            value=s.capped,
        )
        yield CounterMetricFamily(
            "edge_monitor_write_seconds", "Time spent writing batches", value=s.write_seconds
        )
        yield GaugeMetricFamily(
            "edge_monitor_ingest_backlog",
            "Messages received, not yet written",
            value=self.backlog(),
        )
        yield GaugeMetricFamily(
            "edge_monitor_broker_connected",
            "1 while connected to the broker",
            value=int(s.connected),
        )

    def _fleet(self, overview: dict[str, Any]) -> Iterator[Metric]:
        devices = overview["devices"]
        states = GaugeMetricFamily("edge_monitor_devices", "Devices by state", labels=["state"])
        for state in DeviceState:
            states.add_metric([state.value], overview["counts"].get(state.value, 0))
        yield states
        versions = GaugeMetricFamily(
            "edge_monitor_model_version_devices",
            "Devices running each model version",
            labels=["model", "version"],
        )
        for model, version, count in fold_versions(overview["versions"], self.max_version_series):
            versions.add_metric([model, version], count)
        yield versions
        rules: dict[str, int] = {}
        for alert in _firing_rules(self.store):
            rules[alert] = rules.get(alert, 0) + 1
        alerts = GaugeMetricFamily("edge_monitor_alerts_firing", "Firing alerts", labels=["rule"])
        for rule, count in sorted(rules.items()):
            alerts.add_metric([rule], count)
        yield alerts
        labelled, rest = select_labelled(devices, self.max_device_series)
        online = GaugeMetricFamily(
            "edge_monitor_device_online",
            f"1 when online; device={OTHER!r} counts the online devices without a label",
            labels=["device"],
        )
        battery = GaugeMetricFamily(
            "edge_monitor_device_battery_percent",
            f"Battery charge; device={OTHER!r} is the lowest of the unlabelled",
            labels=["device"],
        )
        temperature = GaugeMetricFamily(
            "edge_monitor_device_temperature_celsius",
            f"Hottest sensor; device={OTHER!r} is the hottest of the unlabelled",
            labels=["device"],
        )
        for d in labelled:
            online.add_metric([d["device_id"]], int(d["online"]))
            if d.get("battery_pct") is not None:
                battery.add_metric([d["device_id"]], float(d["battery_pct"]))
            if d.get("max_temp_c") is not None:
                temperature.add_metric([d["device_id"]], float(d["max_temp_c"]))
        if rest:
            online.add_metric([OTHER], sum(int(d["online"]) for d in rest))
            batteries = [float(d["battery_pct"]) for d in rest if d.get("battery_pct") is not None]
            temps = [float(d["max_temp_c"]) for d in rest if d.get("max_temp_c") is not None]
            if batteries:
                battery.add_metric([OTHER], min(batteries))
            if temps:
                temperature.add_metric([OTHER], max(temps))
        yield online
        yield battery
        yield temperature
        yield GaugeMetricFamily(
            "edge_monitor_devices_unlabelled",
            'Devices folded into device="_other" by the series cap',
            value=len(rest),
        )


def _firing_rules(store: Store) -> list[str]:
    return [r["rule"] for r in store.rows("SELECT rule FROM alerts WHERE state = 'firing'")]


def make_registry(collector: MonitorCollector) -> CollectorRegistry:
    """A private registry (not the process-global one) holding the monitor's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)
