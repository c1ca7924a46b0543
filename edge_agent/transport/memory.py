"""An in-memory MQTT broker and client with the surface of ``MqttClient``, for tests of MQTT logic.

Why ship it: code that reacts to messages (command routing, chunk responses, registry
notifications, pipeline sources and sinks) can be tested without starting Mosquitto, sleeping
for subscriptions to land, or patching paho. As httpx ships ``MockTransport``, this package ships
the fake beside the real client, so they change together; ``tests/unit/transport`` checks its
topic matching against a table that ``tests/integration/test_memory_transport.py`` proves
against a real Mosquitto.

What it models: MQTT 3.1.1 topic matching (``+``, ``#``, ``$``-topics hidden from leading
wildcards), retained messages (the last one per topic, sent with ``retain=True`` to a new
subscription, cleared by an empty retained payload), one copy per matching handler, messages
published while disconnected sent on connect, the last will on an unexpected loss, and
connection listeners. What it does not: QoS (everything arrives exactly once), sessions that
outlive a disconnect, ACLs, or a network thread: a message is handed to the subscribers'
handlers in the publisher's thread before ``publish`` returns, which keeps tests
deterministic. Keep real Mosquitto for ACL, session and reconnect tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge_agent.transport.client import Handler, LastWill, Message

__all__ = ["MemoryBroker", "MemoryClient", "topic_matches", "validate_filter"]

log = logging.getLogger(__name__)


def validate_filter(topic_filter: str) -> None:
    """Raise ValueError unless ``topic_filter`` is a valid MQTT subscription filter.

    As the broker does: not empty, ``#`` only as the whole last level, ``+`` only as a whole
    level, no NUL.
    """
    if not topic_filter or "\0" in topic_filter:
        raise ValueError(f"invalid topic filter {topic_filter!r}")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"invalid topic filter {topic_filter!r}: '#' must be the last level")
        if "+" in level and level != "+":
            raise ValueError(f"invalid topic filter {topic_filter!r}: '+' must be a whole level")


def _validate_topic(topic: str) -> None:
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError(f"invalid topic {topic!r} to publish to: no wildcards, not empty")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a message on ``topic`` is delivered to a subscription to ``topic_filter``.

    MQTT 3.1.1 section 4.7: ``+`` matches one level (an empty one too), ``#`` the parent
    level and any number below it, and a filter starting with a wildcard does not match a
    topic starting with ``$`` (``$SYS`` and friends).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels):
            return False
        if level != "+" and level != levels[index]:
            return False
    return len(wanted) == len(levels)


@dataclass
class _Subscription:
    topic_filter: str
    handler: Handler


class MemoryBroker:
    """The shared state of a set of ``MemoryClient``s: who subscribed to what, what is retained."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clients: dict[str, MemoryClient] = {}
        self._retained: dict[str, bytes] = {}
        self.published: list[Message] = []
        """Every message the broker accepted, in order (for assertions)."""

    def client(self, client_id: str, *, will: LastWill | None = None) -> MemoryClient:
        """A new client of this broker (not yet connected)."""
        return MemoryClient(self, client_id, will=will)

    def retained(self, topic: str) -> bytes | None:
        """The retained payload on ``topic``, if any."""
        with self._lock:
            return self._retained.get(topic)

    def _attach(self, client: MemoryClient) -> None:
        with self._lock:
            previous = self._clients.get(client.client_id)
            self._clients[client.client_id] = client
        if previous is not None and previous is not client:
            previous._taken_over()  # as a broker does: the same id connecting again wins

    def _detach(self, client: MemoryClient) -> None:
        with self._lock:
            if self._clients.get(client.client_id) is client:
                del self._clients[client.client_id]

    def _publish(self, message: Message) -> None:
        with self._lock:
            self.published.append(message)
            if message.retain:
                if message.payload:
                    self._retained[message.topic] = message.payload
                else:
                    self._retained.pop(message.topic, None)
            receivers = list(self._clients.values())
        live = Message(message.topic, message.payload, message.qos, retain=False)
        for receiver in receivers:
            receiver._deliver(live)

    def _retained_for(self, topic_filter: str) -> list[Message]:
        with self._lock:
            return [
                Message(topic, payload, 1, retain=True)
                for topic, payload in self._retained.items()
                if topic_matches(topic_filter, topic)
            ]


class MemoryClient:
    """A client of a ``MemoryBroker`` with the public surface of ``MqttClient``."""

    def __init__(
        self, broker: MemoryBroker, client_id: str, *, will: LastWill | None = None
    ) -> None:
        """Not connected until ``connect`` or ``start_in_background``."""
        self.broker = broker
        self.client_id = client_id
        self._will = will
        self._lock = threading.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._connected = threading.Event()
        self._connection_listeners: list[Callable[[bool], None]] = []
        self._queued: list[tuple[Message, mqtt.MQTTMessageInfo]] = []
        self._next_mid = 0

    # -- connection ------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect at once (the broker is in memory); ``timeout_s`` is for interface parity."""
        self._go_online()

    def start_in_background(self) -> None:
        """Connect (at once: there is no network to wait for)."""
        self._go_online()

    @property
    def connected(self) -> bool:
        """Whether the client is connected right now."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (True) or the timeout passes (False)."""
        return self._connected.wait(timeout_s)

    def on_connection_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` on every (re)connect and ``listener(False)`` on every loss."""
        self._connection_listeners.append(listener)

    def close(self) -> None:
        """Disconnect cleanly: no last will."""
        if self._connected.is_set():
            self._connected.clear()
            self.broker._detach(self)

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT (a power cut): the last will is published."""
        if not self._connected.is_set():
            return
        self._connected.clear()
        self.broker._detach(self)
        if self._will is not None:
            will = self._will
            self.broker._publish(Message(will.topic, will.payload, will.qos, will.retain))
        self._notify(False)

    def reconnect(self) -> None:
        """Come back after ``drop``: subscriptions are restored, queued messages sent."""
        self._go_online()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- messages --------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Hand the message to the broker (or queue it until connected), as paho's info says.

        The returned ``MQTTMessageInfo`` is published once the broker has it, so code that
        waits for the PUBACK (``wait_for_publish``, ``is_published``) works unchanged.
        """
        _validate_topic(topic)
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._lock:
            self._next_mid += 1
            info = mqtt.MQTTMessageInfo(self._next_mid)
            message = Message(topic, data, qos, retain)
            if not self._connected.is_set():
                self._queued.append((message, info))
                return info
        self._send(message, info)
        return info

    def subscribe(
        self, topic_filter: str, handler: Handler, qos: int = 1, timeout_s: float = 10.0
    ) -> bool:
        """Deliver messages matching ``topic_filter`` to ``handler``; True when connected.

        As with ``MqttClient``, True means the broker has the subscription: retained messages
        that match have been handed to ``handler`` before this returns.
        """
        validate_filter(topic_filter)
        with self._lock:
            self._subscriptions[topic_filter] = _Subscription(topic_filter, handler)
        if not self._connected.is_set():
            return False
        for message in self.broker._retained_for(topic_filter):
            self._call(handler, message)
        return True

    def unsubscribe(self, topic_filter: str) -> None:
        """Stop delivering ``topic_filter``."""
        with self._lock:
            self._subscriptions.pop(topic_filter, None)

    # -- broker side -----------------------------------------------------------------------

    def _go_online(self) -> None:
        if self._connected.is_set():
            return
        self.broker._attach(self)
        self._connected.set()
        with self._lock:
            subscriptions = list(self._subscriptions.values())
            queued, self._queued = self._queued, []
        for subscription in subscriptions:
            for message in self.broker._retained_for(subscription.topic_filter):
                self._call(subscription.handler, message)
        for message, info in queued:
            self._send(message, info)
        self._notify(True)

    def _send(self, message: Message, info: mqtt.MQTTMessageInfo) -> None:
        self.broker._publish(message)
        info._set_as_published()

    def _deliver(self, message: Message) -> None:
        with self._lock:
            handlers = [
                s.handler
                for s in self._subscriptions.values()
                if topic_matches(s.topic_filter, message.topic)
            ]
        for handler in handlers:
            self._call(handler, message)

    def _call(self, handler: Handler, message: Message) -> None:
        try:
            handler(message)
        except Exception:  # as MqttClient: a bad message must not take the connection down
            log.exception("handler for %s failed on a message; dropped it", message.topic)

    def _taken_over(self) -> None:
        self._connected.clear()
        self._notify(False)

    def _notify(self, connected: bool) -> None:
        for listener in list(self._connection_listeners):
            try:
                listener(connected)
            except Exception:
                log.exception("connection listener failed")
