"""Drains the outbox to MQTT with QoS 1, at least once, in order.

A worker thread keeps up to ``inflight`` records published and awaiting PUBACK. It always takes
the first records in delivery order (priority, then sequence) that are not in flight, so fresh
status / alarm records overtake a telemetry backlog at the next step. A record is deleted from
the outbox only once paho reports its PUBACK (``MQTTMessageInfo.is_published``). When the
connection drops, the in-flight set is forgotten; after the reconnect the oldest
unacknowledged records are published again: the monitor may see a record twice (it dedupes on
``id``) but never misses one, and the first copies arrive in order.

The client is anything shaped like :class:`edge_agent.transport.client.MqttClient`
(:class:`PublishClient`): it owns the connection, reconnects and TLS. Topics come from
:mod:`edge_agent.transport.topics` only; the ``status`` channel is published retained.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import paho.mqtt.client as mqtt

from edge_agent.telemetry.outbox import Outbox, Record
from edge_agent.transport.topics import DeviceChannel, device_topic

log = logging.getLogger(__name__)


class PublishClient(Protocol):
    """What the publisher needs from the MQTT client (MqttClient provides it)."""

    @property
    def connected(self) -> bool:
        """Connected right now."""
        ...

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message; the result tells when it is acknowledged."""
        ...

    def on_connection_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener`` on every connect (True) and loss (False)."""
        ...


class OutboxPublisher:
    """Publishes an :class:`Outbox` through a connected-by-its-owner MQTT client."""

    def __init__(
        self,
        outbox: Outbox,
        device_id: str,
        client: PublishClient,
        *,
        inflight: int = 64,
        batch: int = 256,
    ) -> None:
        """``inflight`` should not exceed the client's own in-flight window."""
        self.outbox = outbox
        self.client = client
        self.inflight = inflight
        self.batch = batch
        self._topics = {c: device_topic(device_id, c) for c in DeviceChannel}
        self._wake = threading.Event()
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self.acknowledged = 0
        self.republished = 0
        self._highest_sent: dict[int, int] = {}
        outbox.add_wakeup(self._wake)
        client.on_connection_change(self._connection_changed)

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            self._generation += 1
        self._wake.set()

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (records not yet acknowledged stay in the outbox)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        in_flight: dict[int, tuple[mqtt.MQTTMessageInfo, int]] = {}
        generation = self._generation
        while not self._stop.is_set():
            self._wake.clear()
            if generation != self._generation or not self.client.connected:
                in_flight.clear()
                generation = self._generation
                if not self.client.connected:
                    self._wake.wait(0.2)
                    continue
            try:
                self._settle_acks(in_flight)
                sent = self._publish_more(in_flight)
            except Exception:  # keep draining whatever one bad step did
                log.exception("outbox publisher step failed; retrying")
                self._stop.wait(1.0)
                continue
            if in_flight:
                oldest = next(iter(in_flight.values()))[0]
                if not sent or len(in_flight) >= self.inflight:
                    try:
                        oldest.wait_for_publish(0.05)
                    except (RuntimeError, ValueError):
                        self._wake.wait(0.05)
            elif not sent:
                self._wake.wait(0.5)

    def _settle_acks(self, in_flight: dict[int, tuple[mqtt.MQTTMessageInfo, int]]) -> None:
        done = [mid for mid, (info, _) in in_flight.items() if info.is_published()]
        if done:
            self.outbox.ack(in_flight.pop(mid)[1] for mid in done)
            self.acknowledged += len(done)

    def _publish_more(self, in_flight: dict[int, tuple[mqtt.MQTTMessageInfo, int]]) -> int:
        free = self.inflight - len(in_flight)
        if free <= 0:
            return 0
        records = self.outbox.peek(min(free, self.batch), skip=(s for _, s in in_flight.values()))
        sent = 0
        for record in records:
            info = self._publish(record)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # disconnected meanwhile: the reconnect republishes from the outbox
            in_flight[info.mid] = (info, record.seq)
            sent += 1
        return sent

    def _publish(self, record: Record) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(
            self._topics[record.channel],
            record.envelope(),
            qos=1,
            retain=record.channel == DeviceChannel.STATUS,
        )
        self.published += 1
        if record.seq <= self._highest_sent.get(record.priority, -1):
            self.republished += 1  # FIFO per class: a lower sequence was sent before
        else:
            self._highest_sent[record.priority] = record.seq
        return info
