"""A shared budget of JSON bytes being decoded at once.

Decoding an all-JSON body takes up to about sixteen times the body in memory (a Python object
and a list slot per number), and ``max_connections`` requests may arrive together: 32 bodies of
8 MiB would need 4 GiB on a device with one. The budget lets concurrent decodes hold at most
``capacity`` bytes of body between them, so the decode peak stays about sixteen times
``max_json_body_bytes`` whatever the concurrency; the others wait their turn, and answer 503
when the wait is longer than a client should be kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edge_agent.errors import HttpError


class DecodeBudget:
    """Bytes of request body decoded at once, across the server's threads."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes (at most ``capacity``) while the block runs."""
        size = min(size, self.capacity)  # a body over the capacity was refused before (413)
        with self._changed:
            if not self._changed.wait_for(
                lambda: self.in_use + size <= self.capacity, timeout=self.wait_s
            ):
                raise HttpError(
                    503, "busy decoding other JSON bodies; retry, or use the binary extension"
                )
            self.in_use += size
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= size
                self._changed.notify_all()
