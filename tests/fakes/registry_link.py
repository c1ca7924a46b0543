"""A registry link for transfer unit tests: answers go straight to the transfer's inboxes.

``ChunkTransfer`` needs of a ``RegistryLink`` only its client's ``connected``, a reconnect
``generation``, a ``budget`` and the routing of answers by request id; a subclass scripts what
the registry answers to each ``send``.
"""

from __future__ import annotations

import queue
from typing import Any

from edge_agent.trust.protocol import ChunkRequest, ChunkResponse


class _Client:
    connected = True


class FakeRegistryLink:
    """Routes answers by request id, as ``RegistryLink`` does; no broker, no threads."""

    def __init__(self) -> None:
        self.client = _Client()
        self.generation = 0
        self.budget: Any = None
        self._inboxes: dict[str, queue.Queue[ChunkResponse]] = {}

    def expect(self, request_id: str, inbox: queue.Queue[ChunkResponse]) -> None:
        self._inboxes[request_id] = inbox

    def forget(self, request_id: str) -> None:
        self._inboxes.pop(request_id, None)

    def deliver(self, response: ChunkResponse) -> None:
        """Hand ``response`` to the transfer that asked, if it still waits for it."""
        inbox = self._inboxes.get(response.id)
        if inbox is not None:
            inbox.put(response)

    def send(self, request: ChunkRequest) -> None:
        raise NotImplementedError
