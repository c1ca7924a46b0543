"""The monitor's HTTP server: dashboard pages, the JSON API and Prometheus ``/metrics``.

Standard library ``ThreadingHTTPServer``, like the agent's API: operators' browsers and one
Prometheus scraper are the clients, and a framework would add dependencies and nothing we use.
The dashboard is static files (HTML, JS, CSS, an inline SVG chart renderer) that read the JSON
API; nothing is loaded from the internet. Pages put data into the DOM as text, never as HTML,
and a Content-Security-Policy allows only this origin.

Routes::

    GET /  /devices/<id>  /rollouts  /power  /drift
                                            the dashboard (one page, routed in the browser)
    GET /static/<file>                      its files
    GET /api/fleet                          devices, states, versions, alert counts
    GET /api/devices/<id>?since_s=3600      one device: series, drift, samples, events, alerts
    GET /api/rollouts?window_s=300          per model/version: device states and gate values
    GET /api/alerts                         recent alerts (firing and resolved)
    GET /api/drift/<model>?since_s=3600     fleet drift: merged profile, per-feature severity
    GET /api/drift?since_s=3600             every model: devices, latest windows, alarm events
    GET /api/power?since_s=3600             battery, power, energy per inference, mode switches
    GET /api/health/device/<id>?window_s=300[&model=M]
    GET /api/health/version/<model>/<version>?window_s=300
    GET /api/stats                          ingest counters
    GET /api/dead-letters                   quarantined messages (newest 100) and counts
    GET /metrics                            Prometheus text format
    GET /healthz                            200 while ingest is connected, else 503
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from edge_agent.errors import HttpError
from edge_agent.fleet.monitor import fleet_views, health, queries
from edge_agent.fleet.monitor.quarantine import recent_dead_letters

if TYPE_CHECKING:
    from edge_agent.fleet.monitor.monitor import Monitor

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"
_ROUTES = [
    (re.compile(r"^/api/fleet$"), "fleet"),
    (re.compile(rf"^/api/devices/(?P<device>{_NAME})$"), "device"),
    (re.compile(r"^/api/rollouts$"), "rollouts"),
    (re.compile(r"^/api/alerts$"), "alerts"),
    (re.compile(rf"^/api/drift/(?P<model>{_NAME})$"), "drift"),
    (re.compile(r"^/api/drift$"), "fleet_drift"),
    (re.compile(r"^/api/power$"), "power"),
    (re.compile(rf"^/api/health/device/(?P<device>{_NAME})$"), "device_health"),
    (
        re.compile(rf"^/api/health/version/(?P<model>{_NAME})/(?P<version>{_NAME})$"),
        "version_health",
    ),
    (re.compile(r"^/api/stats$"), "stats"),
    (re.compile(r"^/api/dead-letters$"), "dead_letters"),
]
_PAGES = re.compile(rf"^/(?:|devices/{_NAME}|rollouts|power|drift)$")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _seconds(query: dict[str, list[str]], name: str, default: float) -> float:
    raw = query.get(name, [str(default)])[0]
    try:
        value = float(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be a number of seconds, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not 0 < value <= 400 * 86400:
        raise HttpError(400, f"{name} must be between 0 and 400 days in seconds")
    return value


def _clean(value: Any) -> Any:
    """JSON cannot carry NaN/inf: map them to null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class MonitorHttp:
    """Routes requests to the monitor's queries."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.address = ""

    def start(self, listen: str) -> str:
        """Listen on ``HOST:PORT`` (port 0: a free one); returns ``host:port``."""
        host, _, port = listen.rpartition(":")
        try:
            server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), _make_handler(self))
        except (OSError, ValueError) as exc:
            from edge_agent.errors import ConfigError

            raise ConfigError(
                f"the monitor cannot listen on {listen!r}: {exc}; give a free HOST:PORT"
            ) from None
        server.daemon_threads = True
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        self.address = f"{bound_host!s}:{bound_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="monitor-http", daemon=True
        )
        self._thread.start()
        return self.address

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        """One GET: (status, body, content type)."""
        if path == "/metrics":
            return 200, self.monitor.metrics_text(), "text/plain; version=0.0.4; charset=utf-8"
        if path == "/healthz":
            ok = self.monitor.ingestor is not None and self.monitor.ingestor.stats.connected
            return (200 if ok else 503), json.dumps({"ok": ok}).encode(), "application/json"
        if path == "/favicon.ico":
            return 200, (STATIC / "favicon.svg").read_bytes(), _TYPES[".svg"]
        if _PAGES.match(path):
            return 200, (STATIC / "index.html").read_bytes(), _TYPES[".html"]
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        for pattern, name in _ROUTES:
            match = pattern.match(path)
            if match:
                data = self._api(name, {k: unquote(v) for k, v in match.groupdict().items()}, query)
                return 200, json.dumps(_clean(data), default=str).encode(), "application/json"
        raise HttpError(404, f"no such page or API: {path[:100]}")

    def _static(self, name: str) -> tuple[int, bytes, str]:
        allowed = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        file = allowed.get(name)
        if file is None:
            raise HttpError(404, f"no static file {name[:80]!r}")
        return 200, file.read_bytes(), _TYPES.get(file.suffix, "application/octet-stream")

    def _api(self, name: str, args: dict[str, str], query: dict[str, list[str]]) -> Any:
        store, now = self.monitor.store, time.time()
        if name == "fleet":
            return queries.fleet_overview(store, now)
        if name == "device":
            since = now - _seconds(query, "since_s", 3600)
            detail = queries.device_detail(store, args["device"], now, since)
            if detail is None:
                raise HttpError(404, f"no device {args['device']!r} has reported")
            return detail
        if name == "rollouts":
            return queries.rollouts(store, now, _seconds(query, "window_s", 300))
        if name == "alerts":
            return {"alerts": queries.recent_alerts(store)}
        if name == "drift":
            return queries.fleet_drift(store, args["model"], now - _seconds(query, "since_s", 3600))
        if name == "fleet_drift":
            since = now - _seconds(query, "since_s", 3600)
            return fleet_views.fleet_drift_overview(store, now, since)
        if name == "power":
            return fleet_views.fleet_power(store, now, now - _seconds(query, "since_s", 3600))
        if name == "device_health":
            model = query.get("model", [None])[0]
            return health.device_health(
                store, args["device"], now, _seconds(query, "window_s", 300), model
            ).as_dict()
        if name == "version_health":
            return health.version_health(
                store, args["model"], args["version"], now, _seconds(query, "window_s", 300)
            ).as_dict()
        if name == "dead_letters":
            return recent_dead_letters(store)
        return self.monitor.stats()


def _make_handler(app: MonitorHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "edge-agent-monitor"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                status, body, kind = app.handle(url.path, parse_qs(url.query))
            except HttpError as exc:
                status, kind = exc.status, "application/json"
                body = json.dumps({"error": str(exc)}).encode()
            except Exception as exc:  # a bug or a database failure: 500, logged
                log.exception("monitor request %s failed", url.path)
                status, kind = 500, "application/json"
                body = json.dumps({"error": f"internal error: {type(exc).__name__}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in _SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
