"""`edge-agent monitor`: run the central monitor (ingest, store, alerts, dashboard, metrics)."""

from __future__ import annotations

import signal
import threading

import click

from edge_agent.cli import _params
from edge_agent.cli._broker import broker_options
from edge_agent.config import BrokerSettings
from edge_agent.fleet.monitor import AlertRules, IngestSettings, Monitor, MonitorSettings

_RULES = AlertRules()
_SETTINGS = MonitorSettings()
_INGEST = IngestSettings()


@click.group()
def monitor() -> None:
    """The central monitor of a fleet: dashboard, JSON API, Prometheus metrics and alerts."""


@monitor.command("serve")
@broker_options()
@click.option(
    "--db",
    default="sqlite:///var/lib/edge-agent/monitor.db",
    show_default=True,
    help="Database: sqlite:///PATH (or a path) or postgresql://USER:PASS@HOST:PORT/DB.",
)
@click.option(
    "--http",
    "listen",
    default="127.0.0.1:8480",
    show_default=True,
    help="Where the dashboard, /api and /metrics listen (HOST:PORT).",
)
@click.option(
    "--retention-days",
    default=_SETTINGS.retention_days,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Delete time series and resolved alerts older than this.",
)
@click.option("--webhook", default=None, help="POST alerts as JSON to this URL (retried).")
@click.option(
    "--group",
    type=_params.SHARE_GROUP,
    default=_INGEST.group,
    show_default=True,
    help="Shared-subscription group: instances with the same group split the traffic.",
)
@click.option("--client-id", default=None, help="MQTT client id (default: per host).")
@click.option(
    "--offline-after-min",
    default=_RULES.offline_after_s / 60,
    show_default=True,
    type=float,
    help="Alert when a device is offline longer than this.",
)
@click.option(
    "--latency-slo-ms",
    default=_RULES.latency_slo_ms,
    show_default=True,
    type=float,
    help="Alert when a model's p95 latency stays above this.",
)
@click.option("--battery-low-pct", default=_RULES.battery_low_pct, show_default=True, type=float)
@click.option("--overheat-c", default=_RULES.overheat_c, show_default=True, type=float)
@click.option(
    "--device-rate",
    default=_INGEST.device_rate_per_s or 0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Messages per second one device may send on average (0: unlimited); more are dropped.",
)
@click.option(
    "--max-models-per-device",
    default=_SETTINGS.max_models_per_device,
    show_default=True,
    type=click.IntRange(min=1),
    help="Distinct model names one device may ever have stored.",
)
@click.option(
    "--max-devices",
    default=_SETTINGS.max_devices or 0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Device ids the database may hold (0: no limit); messages from more are quarantined.",
)
@click.option(
    "--max-alerts-per-device",
    default=_RULES.max_alerts_per_device,
    show_default=True,
    type=click.IntRange(min=1),
    help="Firing alerts one device may hold at once.",
)
def serve(
    broker: BrokerSettings,
    db: str,
    listen: str,
    retention_days: float,
    webhook: str | None,
    group: str,
    client_id: str | None,
    offline_after_min: float,
    latency_slo_ms: float,
    battery_low_pct: float,
    overheat_c: float,
    device_rate: float,
    max_models_per_device: int,
    max_devices: int,
    max_alerts_per_device: int,
) -> None:
    """Ingest the fleet's reports from BROKER into DB and serve the dashboard until Ctrl-C.

    Several instances with the same --group (and one shared PostgreSQL --db) split the load;
    each needs its own --client-id.
    """
    ingest = IngestSettings(group=group or None, device_rate_per_s=device_rate or None)
    if client_id:
        ingest.client_id = client_id
    settings = MonitorSettings(
        http=listen,
        retention_days=retention_days,
        webhook_url=webhook,
        ingest=ingest,
        max_models_per_device=max_models_per_device,
        max_devices=max_devices or None,
        rules=AlertRules(
            latency_slo_ms=latency_slo_ms,
            battery_low_pct=battery_low_pct,
            overheat_c=overheat_c,
            offline_after_s=offline_after_min * 60,
            max_alerts_per_device=max_alerts_per_device,
        ),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    instance = Monitor(db, broker, settings).start()
    click.echo(f"monitor: dashboard on {instance.url}/  metrics on {instance.url}/metrics")
    click.echo(f"monitor: ingesting from {broker.url} into {instance.store.describe()}")
    try:
        stop.wait()
    finally:
        instance.stop()
        click.echo("monitor: stopped")
