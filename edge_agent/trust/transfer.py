"""Moving one file from the registry in chunks, with no trust decisions.

A window of requests stays in flight; timeouts, retries with backoff, reconnects and
rate-limit answers are handled here.

Errors are ngclient's download errors (``DownloadError``; ``DownloadHTTPError`` with 404 only
when the registry said "not found"), because ngclient does not wrap errors raised while chunks
are being iterated, and a timeout must never look like a 404 (that would end a root walk).
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tuf.api.exceptions import DownloadError, DownloadHTTPError

from edge_agent.trust.link import RegistryLink
from edge_agent.trust.protocol import (
    BAD_REQUEST,
    BUSY,
    MAX_CHUNK_BYTES,
    NOT_FOUND,
    OK,
    TOO_MANY_REQUESTS,
    ChunkRequest,
    ChunkResponse,
)


class TransferCancelled(DownloadError):
    """The caller cancelled the transfer (shutdown, a newer update, a time limit)."""


@dataclass(frozen=True)
class FetchSettings:
    """How a device fetches from the registry."""

    chunk_bytes: int = 64 * 1024  # bytes per request; <= the registry's max chunk
    window: int = 8  # requests in flight; memory in use is about window * chunk_bytes
    chunk_timeout_s: float = 5.0  # seconds without an answer before a request is re-sent
    max_attempts: int = 6  # timeouts per chunk before the transfer fails
    backoff_base_s: float = 0.25  # first retry delay; doubles per attempt
    backoff_max_s: float = 8.0  # longest retry delay
    deadline_s: float = 900.0  # longest a whole file may take
    flush_every: int = 16  # chunks between persisting a partial download's progress

    def __post_init__(self) -> None:
        checks = {
            "chunk_bytes": 256 <= self.chunk_bytes <= MAX_CHUNK_BYTES,
            "window": 1 <= self.window <= 256,
            "chunk_timeout_s": self.chunk_timeout_s > 0,
            "max_attempts": self.max_attempts >= 1,
            "deadline_s": self.deadline_s > 0,
            "flush_every": self.flush_every >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"FetchSettings: invalid {', '.join(bad)} ({self})")


Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) as chunks land."""


@dataclass
class _Outstanding:
    index: int
    sent_at: float


class ChunkTransfer:
    """Fetches chunks of one registry path; yields ``(index, data, total)`` as they arrive."""

    def __init__(
        self,
        link: RegistryLink,
        path: str,
        settings: FetchSettings,
        cancel: threading.Event | None = None,
    ) -> None:
        self.link = link
        self.path = path
        self.settings = settings
        self.cancel = cancel or threading.Event()
        self.requests_sent = 0
        self._deadline = time.monotonic() + settings.deadline_s

    def chunks(self, indices: Iterable[int], total: int | None) -> Iterator[tuple[int, bytes, int]]:
        """Fetch ``indices``; ``total`` is the file size when known (else the first answer's).

        A registry whose size differs from ``total`` fails the transfer (wrong length).
        """
        settings = self.settings
        inbox: queue.Queue[ChunkResponse] = queue.Queue(maxsize=settings.window * 4)
        pending: deque[int] = deque(indices)
        not_before: dict[int, float] = {}
        attempts: dict[int, int] = {}
        outstanding: dict[str, _Outstanding] = {}
        generation = self.link.generation
        try:
            while pending or outstanding:
                now = time.monotonic()
                self._check_alive(now)
                if self.link.generation != generation:  # reconnected: answers may be lost
                    generation = self.link.generation
                    for request_id, entry in list(outstanding.items()):
                        self.link.forget(request_id)
                        del outstanding[request_id]
                        pending.appendleft(entry.index)
                self._fill_window(pending, outstanding, not_before, inbox, now)
                try:
                    response = inbox.get(timeout=self._wait_time(outstanding, not_before, now))
                except queue.Empty:
                    response = None
                if response is not None:
                    answered = outstanding.get(response.id)
                    if answered is None:
                        continue
                    entry = answered
                    result = self._accept(response, entry, total)
                    if result is None:  # garbage for this request: the timeout re-sends it
                        continue
                    del outstanding[response.id]
                    self.link.forget(response.id)
                    if response.status in (TOO_MANY_REQUESTS, BUSY):
                        pending.appendleft(entry.index)
                        delay = max(response.retry_after, settings.backoff_base_s)
                        not_before[entry.index] = time.monotonic() + delay
                        continue
                    total = response.total
                    yield entry.index, response.data, response.total
                self._expire(outstanding, pending, attempts, not_before)
        finally:
            for request_id in outstanding:
                self.link.forget(request_id)

    # -- steps ---------------------------------------------------------------------------

    def _check_alive(self, now: float) -> None:
        if self.cancel.is_set():
            raise TransferCancelled(f"download of {self.path} cancelled")
        if now > self._deadline:
            raise DownloadError(
                f"download of {self.path} took longer than {self.settings.deadline_s:.0f} s; "
                "gave up (it resumes on the next try)"
            )

    def _fill_window(
        self,
        pending: deque[int],
        outstanding: dict[str, _Outstanding],
        not_before: dict[int, float],
        inbox: queue.Queue[ChunkResponse],
        now: float,
    ) -> None:
        if not self.link.client.connected:
            return  # requests sent now would sit in paho's queue; wait for the reconnect
        waiting: deque[int] = deque()  # retries still backing off keep their place in front
        while pending and len(outstanding) < self.settings.window:
            index = pending.popleft()
            if not_before.get(index, 0.0) > now:
                waiting.append(index)
                continue
            request = ChunkRequest(
                secrets.token_hex(8),
                self.path,
                index * self.settings.chunk_bytes,
                self.settings.chunk_bytes,
            )
            self.link.expect(request.id, inbox)
            outstanding[request.id] = _Outstanding(index, now)
            self.link.send(request)
            self.requests_sent += 1
        pending.extendleft(reversed(waiting))

    def _wait_time(
        self, outstanding: dict[str, _Outstanding], not_before: dict[int, float], now: float
    ) -> float:
        wakeups = [e.sent_at + self.settings.chunk_timeout_s for e in outstanding.values()]
        wakeups += [t for t in not_before.values() if t > now]
        soonest = min(wakeups, default=now + 0.2)
        return min(max(soonest - now, 0.005), 0.2)

    def _accept(
        self, response: ChunkResponse, entry: _Outstanding, total: int | None
    ) -> ChunkResponse | None:
        """The response if it really answers ``entry``; raises for a definite refusal."""
        offset = entry.index * self.settings.chunk_bytes
        if response.path != self.path or response.offset != offset:
            return None
        if response.status == NOT_FOUND:
            raise DownloadHTTPError(f"registry has no {self.path}", NOT_FOUND)
        if response.status == BAD_REQUEST:
            raise DownloadError(
                f"registry refused the request for {self.path}: {response.reason or 'bad request'}"
            )
        if response.status in (TOO_MANY_REQUESTS, BUSY):
            return response
        if response.status != OK:
            return None
        if total is not None and response.total != total:
            raise DownloadError(
                f"registry says {self.path} has {response.total} bytes, but {total} are "
                "expected (wrong length: a tampered or mismatched file)"
            )
        if response.total == 0 and offset == 0 and not response.data:
            return response  # an empty file
        expected = min(self.settings.chunk_bytes, response.total - offset)
        if expected <= 0 or len(response.data) != expected:
            return None
        return response

    def _expire(
        self,
        outstanding: dict[str, _Outstanding],
        pending: deque[int],
        attempts: dict[int, int],
        not_before: dict[int, float],
    ) -> None:
        now = time.monotonic()
        for request_id, entry in list(outstanding.items()):
            if now - entry.sent_at < self.settings.chunk_timeout_s:
                continue
            del outstanding[request_id]
            self.link.forget(request_id)
            tries = attempts[entry.index] = attempts.get(entry.index, 0) + 1
            if tries >= self.settings.max_attempts:
                raise DownloadError(
                    f"the registry did not answer chunk {entry.index} of {self.path} after "
                    f"{tries} tries ({self.settings.chunk_timeout_s:g} s each); is "
                    "`edge-agent registry serve` running and reachable?"
                )
            delay = min(
                self.settings.backoff_base_s * 2 ** (tries - 1), self.settings.backoff_max_s
            )
            not_before[entry.index] = now + delay
            pending.appendleft(entry.index)  # retries first: a dead registry is noticed fast


def fetch_stream(
    link: RegistryLink,
    path: str,
    settings: FetchSettings,
    cancel: threading.Event | None = None,
    max_bytes: int = 8 * 1024 * 1024,
) -> Iterator[bytes]:
    """The bytes of a small file (metadata), in order, without knowing its size up front."""
    transfer = ChunkTransfer(link, path, settings, cancel)
    total = 0
    for _index, data, size in transfer.chunks([0], None):
        total = size
        yield data
    if total > max_bytes:
        raise DownloadError(f"registry says {path} has {total} bytes; more than {max_bytes}")
    count = -(-total // settings.chunk_bytes)
    if count <= 1:
        return
    held: dict[int, bytes] = {}
    next_index = 1
    for index, data, _size in transfer.chunks(range(1, count), total):
        held[index] = data
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1
