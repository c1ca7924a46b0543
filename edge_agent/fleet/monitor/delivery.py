"""Alert delivery: a webhook (HTTP POST of JSON, retried with backoff) and an MQTT topic.

The webhook sink never blocks the alert evaluator: alerts go into a bounded queue and one
worker thread posts them in order. A failed POST (connection refused, timeout, 5xx, 429) is
retried with exponential backoff up to ``attempts`` times; other 4xx answers are final (the
receiver rejected the payload, resending will not help). Counters say what happened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent._retry import backoff_delays
from edge_agent.errors import ConfigError
from edge_agent.transport import topics

log = logging.getLogger(__name__)


def retryable(status: int | None) -> bool:
    """Whether a POST that ended with HTTP ``status`` (None: no answer) is worth retrying."""
    return status is None or status == 429 or status >= 500


@dataclass
class WebhookStats:
    """What the webhook sink did."""

    delivered: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0


class WebhookSink:
    """POSTs each alert as JSON to ``url``, in order, retrying with backoff."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.attempts = attempts
        self.delays = backoff_delays(attempts, first_backoff_s, max_backoff_s)
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.stats = WebhookStats()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: dict[str, Any]) -> None:
        """Queue ``alert`` (dropped and counted when the queue is full)."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.stats.dropped += 1
            log.error("alert webhook queue full; dropped %s", alert.get("key"))

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout_s``), then stop."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._stop.set()
        self._thread.join(1.0)

    def _post(self, body: bytes) -> int | None:
        request = urllib.request.Request(self.url, body, self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            log.debug("webhook %s unreachable: %s", self.url, exc)
            return None

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            body = json.dumps(alert, default=str).encode()
            status: int | None = None
            for attempt in range(self.attempts):
                status = self._post(body)
                if status is not None and 200 <= status < 300:
                    self.stats.delivered += 1
                    break
                if not retryable(status) or attempt == self.attempts - 1:
                    self.stats.failed += 1
                    log.error(
                        "alert webhook %s failed (%s) after %d attempt(s); alert %s not delivered",
                        self.url,
                        status or "no answer",
                        attempt + 1,
                        alert.get("key"),
                    )
                    break
                self.stats.retries += 1
                if self._stop.wait(self.delays[attempt]):
                    return


class MqttAlertSink:
    """Publishes each alert as JSON (QoS 1) on ``ea/v1/monitor/alerts``."""

    def __init__(self, publish: Callable[[str, bytes, int], None]) -> None:
        self._publish = publish
        self.topic = topics.monitor_alerts()
        self.published = 0

    def __call__(self, alert: dict[str, Any]) -> None:
        """Publish ``alert``."""
        self._publish(self.topic, json.dumps(alert, default=str).encode(), 1)
        self.published += 1
