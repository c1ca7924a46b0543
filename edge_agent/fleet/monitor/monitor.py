"""The central monitor: ingest + store + alerts + retention + dashboard, as one object.

``Monitor(db_url, broker_url).start()`` opens (and migrates) the database, connects to the
broker, starts the HTTP server and the housekeeping thread (alert rules every
``alert_interval_s``, retention every ``retention_interval_s``); ``.stop()`` drains and closes
everything. The rollout controller and the demo use it as a library: the health-gate methods
(:meth:`Monitor.device_health`, :meth:`Monitor.version_health`) read the same database the
dashboard shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import BrokerSettings
from edge_agent.fleet.monitor import health, queries
from edge_agent.fleet.monitor.alerts import AlertEvaluator, AlertRules, Notify
from edge_agent.fleet.monitor.delivery import MqttAlertSink, WebhookSink
from edge_agent.fleet.monitor.health import Health
from edge_agent.fleet.monitor.http import MonitorHttp
from edge_agent.fleet.monitor.ingest import Ingestor, IngestSettings
from edge_agent.fleet.monitor.metrics import MonitorCollector, make_registry, render
from edge_agent.fleet.monitor.store import Store, open_store
from edge_agent.fleet.monitor.store.base import MAX_DEVICES

log = logging.getLogger(__name__)


@dataclass
class MonitorSettings:
    """Everything tunable about a monitor (units in the names)."""

    http: str | None = "127.0.0.1:0"
    """Dashboard / API / metrics listen address (None: no HTTP server)."""
    retention_days: float = 30.0
    retention_interval_s: float = 3600.0
    alert_interval_s: float = 5.0
    rules: AlertRules = field(default_factory=AlertRules)
    webhook_url: str | None = None
    mqtt_alerts: bool = True
    """Publish alerts on ``ea/v1/monitor/alerts``."""
    ingest: IngestSettings = field(default_factory=IngestSettings)
    max_device_series: int = 200
    max_models_per_device: int = 64
    """Distinct model names one device may ever have stored; rows naming more are dropped."""
    max_devices: int | None = MAX_DEVICES
    """Device ids the database may hold (None: no limit); messages from further ids become
    ``device_limit`` dead letters and one ``device_limit`` alert fires."""
    sqlite_synchronous: str = "NORMAL"


class Monitor:
    """One monitor instance. Several may share a database and split the broker's traffic."""

    def __init__(
        self,
        db_url: str,
        broker_url: str | BrokerSettings,
        settings: MonitorSettings | None = None,
        *,
        extra_sinks: list[Notify] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db_url = db_url
        self.broker_url = broker_url
        self.settings = settings or MonitorSettings()
        self.clock = clock
        self._extra_sinks = list(extra_sinks or [])
        self.store: Store = None  # type: ignore[assignment]  # set by start()
        self.ingestor: Ingestor | None = None
        self.alerts: AlertEvaluator | None = None
        self.webhook: WebhookSink | None = None
        self.http: MonitorHttp | None = None
        self._registry: Any = None
        self._stop = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self.last_retention: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Open the store, connect, serve; raises StoreError / TransportError / ConfigError."""
        s = self.settings
        self.store = open_store(self.db_url, sqlite_synchronous=s.sqlite_synchronous)
        self.store.max_models_per_device = s.max_models_per_device
        self.store.max_devices = s.max_devices
        try:
            self.ingestor = Ingestor(self.broker_url, self.store, s.ingest)
            sinks: list[Notify] = list(self._extra_sinks)
            if s.webhook_url:
                self.webhook = WebhookSink(s.webhook_url)
                sinks.append(self.webhook)
            if s.mqtt_alerts:
                ingestor = self.ingestor
                sinks.append(MqttAlertSink(lambda t, p, q: ingestor.publish(t, p, q)))
            self.alerts = AlertEvaluator(self.store, s.rules, sinks)
            collector = MonitorCollector(
                self.store,
                lambda: self.ingestor.stats if self.ingestor else None,  # type: ignore[arg-type,return-value]
                lambda: self.ingestor.backlog() if self.ingestor else 0,
                max_device_series=s.max_device_series,
            )
            self._registry = make_registry(collector)
            self.ingestor.start()
            if s.http is not None:
                self.http = MonitorHttp(self)
                address = self.http.start(s.http)
                log.info("monitor dashboard on http://%s/", address)
            self._housekeeping = threading.Thread(
                target=self._housekeep, name="monitor-housekeeping", daemon=True
            )
            self._housekeeping.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop HTTP, write what ingest holds, stop alerts and webhooks, close the store."""
        self._stop.set()
        if self.http is not None:
            self.http.stop()
        if self._housekeeping is not None:
            self._housekeeping.join(15)
            self._housekeeping = None
        if self.ingestor is not None:
            self.ingestor.stop()
        if self.webhook is not None:
            self.webhook.close()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def http_address(self) -> str:
        """``host:port`` of the dashboard (empty without HTTP)."""
        return self.http.address if self.http is not None else ""

    @property
    def url(self) -> str:
        """``http://host:port`` of the dashboard."""
        return f"http://{self.http_address}" if self.http_address else ""

    # -- housekeeping ----------------------------------------------------------------------

    def _housekeep(self) -> None:
        next_retention = time.monotonic()
        while not self._stop.wait(self.settings.alert_interval_s):
            try:
                self.evaluate_alerts()
            except Exception:
                log.exception("alert evaluation failed")
            if time.monotonic() >= next_retention:
                next_retention = time.monotonic() + self.settings.retention_interval_s
                try:
                    self.apply_retention()
                except Exception:
                    log.exception("retention failed")

    def evaluate_alerts(self) -> list[dict[str, Any]]:
        """Run the alert rules now (also done every ``alert_interval_s``)."""
        assert self.alerts is not None, "start() the monitor first"
        return self.alerts.evaluate(self.clock())

    def apply_retention(self) -> dict[str, int]:
        """Delete data older than ``retention_days`` now; rows removed per table."""
        cutoff = self.clock() - self.settings.retention_days * 86400
        self.last_retention = self.store.prune(cutoff)
        return self.last_retention

    # -- what other components call --------------------------------------------------------

    def device_health(
        self, device_id: str, window_s: float = 300.0, model: str | None = None
    ) -> Health:
        """Health gates of one device (error rate, p95, agreement, drift alarm, online)."""
        return health.device_health(self.store, device_id, self.clock(), window_s, model)

    def version_health(self, model: str, version: str, window_s: float = 300.0) -> Health:
        """Health gates of every device running ``model`` at ``version``."""
        return health.version_health(self.store, model, version, self.clock(), window_s)

    def fleet(self) -> dict[str, Any]:
        """The fleet overview the dashboard shows."""
        return queries.fleet_overview(self.store, self.clock())

    def online(self, device_id: str) -> bool:
        """Whether ``device_id`` is online now."""
        rows = self.store.rows(
            "SELECT state, last_seen FROM devices WHERE device_id = ?", [device_id]
        )
        return bool(rows) and health.is_online(rows[0], self.clock())

    def stats(self) -> dict[str, Any]:
        """Ingest counters and backlog."""
        if self.ingestor is None:
            return {}
        return {**self.ingestor.stats.as_dict(), "backlog": self.ingestor.backlog()}

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until everything received has been written (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ingestor is None or self.ingestor.backlog() == 0:
                return True
            time.sleep(0.02)
        return False

    def metrics_text(self) -> bytes:
        """The Prometheus exposition."""
        return render(self._registry)
