"""Ingest: MQTT -> parse -> batched transactional writes -> broker acknowledgement.

Flow. paho's network thread only appends ``(topic, payload, mid, generation)`` to a queue. The
writer thread takes everything queued (up to ``batch_max``), parses it
(:mod:`edge_agent.fleet.monitor.payloads`), writes all rows in ONE transaction and only then
sends the PUBACKs (paho manual acknowledgement). So a record is acknowledged to the broker only
once it is committed: if the monitor dies between receiving and committing, the broker still
holds the record for this persistent session and sends it again. Redeliveries are deduped by
the store's unique record keys.

Why paho directly rather than :class:`edge_agent.transport.client.MqttClient`: the wrapper
acknowledges on receipt and dispatches by matching topic filters (which ``$share/...`` filters
never match). Ingest needs manual acknowledgement and shared subscriptions.

Backpressure: the broker sends at most ``max_inflight_messages`` unacknowledged QoS 1 messages
to us (deploy/mosquitto.conf raises it to 1000) and queues the rest for us (persistent session,
``max_queued_messages``); so the in-memory queue is bounded by the broker's in-flight window and
a slow database slows the broker's delivery instead of losing records.

Quarantine, never block (:mod:`edge_agent.fleet.monitor.quarantine`). Garbage (not JSON, wrong
shapes, oversized, unknown topics) is counted per reason, kept as a dead letter and
acknowledged (it would only come back). When the database refuses a batch while it still
answers, the batch is bisected: every message that can be stored is, and a message refused on
its own becomes a dead letter too. Only a database that does not answer (or cannot take the
dead letters either) makes the batch wait and retry, unacknowledged. Each device is held to a
message rate (a token bucket); what exceeds it is counted and dropped.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent._retry import backoff_delay
from edge_agent.config import BrokerSettings
from edge_agent.errors import TransportError
from edge_agent.fleet.monitor.payloads import PayloadError, Row, parse_message
from edge_agent.fleet.monitor.quarantine import (
    DeadLetter,
    DeviceRateLimiter,
    dead_letter,
    isolate,
)
from edge_agent.fleet.monitor.store import Store, StoreError, WriteResult
from edge_agent.transport import topics
from edge_agent.transport.client import BrokerAddress, apply_broker_settings
from edge_agent.transport.topics import DeviceChannel

log = logging.getLogger(__name__)

SHARED_CHANNELS = (
    DeviceChannel.TELEMETRY,
    DeviceChannel.DRIFT,
    DeviceChannel.ROLLOUT,
    DeviceChannel.SAMPLES,
)
"""Split between monitor instances. ``status`` is retained, and brokers do not deliver retained
messages to shared subscriptions, so every instance subscribes to it plainly (it is small)."""


@dataclass
class IngestSettings:
    """How the monitor consumes the broker."""

    client_id: str = field(default_factory=lambda: f"edge-agent-monitor-{socket.gethostname()}")
    """Stable per instance: the broker keeps this persistent session's queue while it is away."""
    group: str | None = "edge-agent-monitor"
    """Shared-subscription group (None: plain subscriptions, one instance gets everything)."""
    clean_session: bool = False
    keepalive_s: int = 30
    batch_max: int = 2000
    """Most messages per transaction."""
    linger_s: float = 0.02
    """How long a non-full batch waits for more before it is written (seconds)."""
    max_payload_bytes: int = 2 * 1024 * 1024
    device_rate_per_s: float | None = 50.0
    """Messages per second one device may send on average (None: unlimited); an agent sends
    a few a second at most, a sample upload in bursts."""
    device_burst: float = 2000.0
    """Messages one device may send at once above its rate (a reconnect flushes its outbox)."""
    dead_letters_kept: int = 1000
    """Newest quarantined messages kept in the ``dead_letters`` table."""


@dataclass
class IngestStats:
    """Counters since start (read by metrics and the dashboard)."""

    received: Counter[str] = field(default_factory=Counter)
    """Messages per channel."""
    stored: int = 0
    """Records stored for the first time (telemetry, drift, events, samples)."""
    statuses: int = 0
    sample_chunks: int = 0
    """Sample chunks after the first (acknowledged, nothing to store)."""
    duplicates: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    batch_rows: int = 0
    write_errors: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    """Messages kept as dead letters, per reason (decoding reasons and ``store_error``)."""
    capped: int = 0
    """Rows not stored: they named a model beyond the device's cap."""
    write_seconds: float = 0.0
    last_batch_size: int = 0
    connected: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-able snapshot."""
        return {
            "received": dict(self.received),
            "received_total": sum(self.received.values()),
            "stored": self.stored,
            "statuses": self.statuses,
            "sample_chunks": self.sample_chunks,
            "duplicates": self.duplicates,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "batches": self.batches,
            "write_errors": self.write_errors,
            "quarantined": dict(self.quarantined),
            "quarantined_total": sum(self.quarantined.values()),
            "capped": self.capped,
            "connected": self.connected,
        }


@dataclass(frozen=True)
class _Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float


class Ingestor:
    """Subscribes, batches, writes and acknowledges. ``start`` / ``stop``; thread-safe stats."""

    def __init__(
        self,
        broker: str | BrokerSettings,
        store: Store,
        settings: IngestSettings | None = None,
        on_batch: Callable[[list[Row]], None] | None = None,
    ) -> None:
        if isinstance(broker, str):
            broker = BrokerSettings(url=broker)
        self.address = BrokerAddress.from_url(broker.url)
        self.store = store
        self.settings = settings or IngestSettings()
        self.stats = IngestStats()
        self._on_batch = on_batch
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        s = self.settings
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=s.clean_session,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        apply_broker_settings(self.client, broker)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self._subscribe_mid = -1
        self.client.on_message = self._on_message
        self._connected = threading.Event()
        self._limiter = DeviceRateLimiter(
            self.settings.device_rate_per_s, self.settings.device_burst
        )
        self._enqueued = 0
        self._processed = 0
        self._limit_warned = -3600.0

    # -- lifecycle -------------------------------------------------------------------------

    def filters(self) -> list[str]:
        """The subscriptions: status plainly, the rest shared when a group is set."""
        result = [topics.all_devices(DeviceChannel.STATUS)]
        for channel in SHARED_CHANNELS:
            plain = topics.all_devices(channel)
            group = self.settings.group
            result.append(topics.shared(group, plain) if group else plain)
        return result

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect, subscribe and start writing; TransportError if the broker is unreachable."""
        self._writer = threading.Thread(target=self._write_loop, name="monitor-ingest", daemon=True)
        self._writer.start()
        try:
            self.client.connect_async(
                self.address.host, self.address.port, self.settings.keepalive_s
            )
        except (OSError, ValueError) as exc:
            self.stop()
            raise TransportError(f"cannot reach the broker at {self._where()}: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise TransportError(
                f"the monitor could not connect to the broker at {self._where()} within "
                f"{timeout_s:.0f} s; check that it runs and the URL and credentials"
            )

    def stop(self, drain_s: float = 5.0) -> None:
        """Write what is queued (up to ``drain_s``), then disconnect."""
        deadline = time.monotonic() + drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._connected.clear()  # an orderly disconnect is not worth a warning
        if self._writer is not None:
            self._writer.join(10)
            self._writer = None
        self.client.disconnect()
        self.client.loop_stop()
        reset = getattr(self.client, "_reset_sockets", None)
        if reset is not None:  # paho leaves the wake-up socket pair to __del__
            reset()
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the monitor's connection (alerts)."""
        self.client.publish(topic, payload, qos=qos)

    def backlog(self) -> int:
        """Messages received and not yet written (queued or in the batch being written)."""
        return self._enqueued - self._processed

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the monitor: %s", self._where(), reason)
            return
        with self._lock:
            self._generation += 1
        _result, mid = client.subscribe([(f, 1) for f in self.filters()])
        self._subscribe_mid = mid
        self.stats.connected = True
        log.info("monitor subscribed at %s: %s", self._where(), ", ".join(self.filters()))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            log.error("the broker refused monitor subscriptions: %s (check its ACL)", refused)
        self._connected.set()  # start() returns once the broker has confirmed them

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.stats.connected = False
        if self._connected.is_set():
            log.warning("monitor lost the broker at %s (%s); reconnecting", self._where(), reason)
        self._connected.clear()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._enqueued += 1
        self._queue.put(
            _Incoming(
                message.topic,
                bytes(message.payload),
                message.mid,
                message.qos,
                self._generation,
                time.time(),
            )
        )

    # -- the writer thread -----------------------------------------------------------------

    def _take_batch(self) -> list[_Incoming]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.linger_s
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take_batch()
            if batch:
                try:
                    self._process(batch)
                finally:
                    self._processed += len(batch)

    def _process(self, batch: list[_Incoming]) -> None:
        groups: list[tuple[_Incoming, list[Row]]] = []
        letters: list[DeadLetter] = []
        for item in batch:
            parsed_topic = topics.parse(item.topic)
            channel = parsed_topic.channel if parsed_topic else "unknown"
            device = parsed_topic.device_id if parsed_topic else None
            self.stats.received[channel] += 1
            if not self._limiter.allow(device or "", item.received):
                self.stats.dropped["rate_limited"] += 1
                continue
            try:
                parsed = parse_message(
                    item.topic, item.payload, item.received, self.settings.max_payload_bytes
                )
            except PayloadError as exc:
                self.stats.dropped[exc.reason] += 1
                log.debug("dropped a message on %s: %s", item.topic[:120], exc)
                letters.append(self._letter(item, device, exc.reason, str(exc)))
                continue
            except Exception as exc:  # a parser bug must not stop ingest; count it and go on
                self.stats.dropped["parser_error"] += 1
                log.exception("parser failed on a message on %s", item.topic[:120])
                letters.append(self._letter(item, device, "parser_error", repr(exc)))
                continue
            if parsed.skipped:
                self.stats.sample_chunks += 1
            elif channel == DeviceChannel.STATUS.value:
                self.stats.statuses += 1
            if parsed.rows:
                groups.append((item, parsed.rows))
        started = time.perf_counter()
        stored = self._store(groups, letters)
        if stored is None:
            return  # stopping: not acknowledged, the broker redelivers to the next session
        results, rows = stored
        self.stats.write_seconds += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.last_batch_size = len(batch)
        for result in results:
            self.stats.duplicates += result.duplicates
            self.stats.stored += result.new
            self.stats.capped += result.capped
        for item in batch:
            if item.qos > 0 and item.generation == self._generation:
                self.client.ack(item.mid, item.qos)
        if self._on_batch is not None and rows:
            try:
                self._on_batch(rows)
            except Exception:
                log.exception("batch listener failed")

    def _store(
        self, groups: list[tuple[_Incoming, list[Row]]], letters: list[DeadLetter]
    ) -> tuple[list[WriteResult], list[Row]] | None:
        """Write the batch, quarantining what the database refuses; None when stopped first.

        Retried with backoff (nothing acknowledged) while the database does not answer or
        cannot take the dead letters; committed parts are deduped when written again.
        """
        now = time.time()

        def commit(part: Sequence[tuple[_Incoming, list[Row]]]) -> WriteResult:
            return self.store.write_batch([r for _item, rows in part for r in rows], now)

        failures = 0
        while True:
            try:
                results, poison = isolate(groups, commit, self.store.ping, (StoreError,))
                refused = [
                    self._letter(item, rows[0].device_id, "store_error", str(exc))
                    for (item, rows), exc in poison
                ]
                unknown: set[str] = set()
                for result in results:
                    unknown |= result.refused_devices
                limited = [
                    (item, rows[0].device_id)
                    for item, rows in groups
                    if rows[0].device_id in unknown
                ]
                over = [
                    self._letter(
                        item,
                        device,
                        "device_limit",
                        f"the monitor holds its limit of {self.store.max_devices} devices",
                    )
                    for item, device in limited
                ]
                self.store.write_dead_letters(
                    letters + refused + over, self.settings.dead_letters_kept
                )
                break
            except StoreError as exc:
                self.stats.write_errors += 1
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.error("monitor could not store a batch (%s); retrying in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    return None
        for letter in letters:
            self.stats.quarantined[letter.reason] += 1
        if limited:
            self.stats.quarantined["device_limit"] += len(limited)
            if time.monotonic() - self._limit_warned >= 60:  # a flood: one warning a minute
                self._limit_warned = time.monotonic()
                log.warning(
                    "device limit (%s) reached: %d messages from %d new device ids quarantined",
                    self.store.max_devices,
                    len(limited),
                    len(unknown),
                )
        for (item, _rows), error in poison:
            self.stats.quarantined["store_error"] += 1
            log.warning("quarantined a message on %s the database refused: %s", item.topic, error)
        refused_ids = {id(item) for (item, _rows), _exc in poison}
        refused_ids.update(id(item) for item, _device in limited)
        rows = [r for item, rs in groups if id(item) not in refused_ids for r in rs]
        return results, rows

    @staticmethod
    def _letter(item: _Incoming, device: str | None, reason: str, detail: str) -> DeadLetter:
        return dead_letter(item.topic, item.payload, device, reason, detail, item.received)

    def _where(self) -> str:
        return (
            f"{'mqtts' if self.address.tls else 'mqtt'}://{self.address.host}:{self.address.port}"
        )
