"""A device's request/response channel to the registry, over the shared MqttClient.

Responses arrive on paho's network thread; here they are only decoded and handed to the
transfer that asked (by request id) through a bounded queue, so a flood of garbage or of
responses for somebody else can neither block the network thread nor grow memory. Everything
that is not an answer to an outstanding request of this device is counted and dropped.
"""

from __future__ import annotations

import queue
import threading

from edge_agent.transport import topics
from edge_agent.transport.budget import LinkBudget
from edge_agent.transport.client import Message, MqttClient
from edge_agent.trust.protocol import ChunkRequest, ChunkResponse, decode_response


class RegistryLink:
    """Sends chunk requests for one device and routes the answers to whoever waits for them."""

    def __init__(
        self, client: MqttClient, device_id: str, budget: LinkBudget | None = None
    ) -> None:
        """``budget`` is the device's link budget, which every transfer over this link obeys."""
        self.client = client
        self.budget = budget
        self.device_id = topics.check_device_id(device_id)
        self._request_topic = topics.registry_request(device_id)
        self._response_topic = topics.registry_response(device_id)
        self._lock = threading.Lock()
        self._waiters: dict[str, queue.Queue[ChunkResponse]] = {}
        self._generation = 0
        self.ignored = 0
        """Responses dropped: undecodable, wrong hash, or not for an outstanding request."""
        client.subscribe(self._response_topic, self._on_response)
        client.on_connection_change(self._on_connection_change)

    @property
    def generation(self) -> int:
        """Increases on every reconnect (requests sent before it may be lost)."""
        return self._generation

    def expect(self, request_id: str, inbox: queue.Queue[ChunkResponse]) -> None:
        """Route the response to ``request_id`` into ``inbox``."""
        with self._lock:
            self._waiters[request_id] = inbox

    def forget(self, request_id: str) -> None:
        """Stop routing ``request_id`` (a late answer is then dropped)."""
        with self._lock:
            self._waiters.pop(request_id, None)

    def send(self, request: ChunkRequest) -> None:
        """Publish a request at QoS 0.

        Not QoS 1: paho re-sends unacknowledged QoS 1 messages after a reconnect, even on a
        clean session, and the transfer re-asks everything in flight after a reconnect
        anyway (with new request ids), so every such stale request made the registry send
        its range a second time, over the link, to be dropped here as unknown (measured:
        about 2.6 chunks of 256 KiB wasted per cut, benchmarks/link.py). A request lost
        without a reconnect is re-asked when its range stays silent (``chunk_timeout_s``).
        """
        self.client.publish(self._request_topic, request.encode(), qos=0)

    def close(self) -> None:
        """Stop listening for responses."""
        self.client.unsubscribe(self._response_topic)
        with self._lock:
            self._waiters.clear()

    def _on_response(self, message: Message) -> None:
        response = decode_response(message.payload)
        with self._lock:
            inbox = self._waiters.get(response.id) if response is not None else None
            if inbox is None or response is None:
                self.ignored += 1
                return
        try:
            inbox.put_nowait(response)
        except queue.Full:
            with self._lock:
                self.ignored += 1

    def _on_connection_change(self, connected: bool) -> None:
        if connected:
            with self._lock:
                self._generation += 1
