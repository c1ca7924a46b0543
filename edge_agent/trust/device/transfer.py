"""Moving one file from the registry in chunks, with no trust decisions.

A window stays in flight, asked for with a few range requests that the registry streams back
in frames (one request per range, not per chunk: per-chunk round trips and Python work were
what held delivery to a fraction of the transport's speed). Window and frames follow the link
(``window.py``). On a fast link a frame is a whole chunk, passed on uncopied. On a slow one the
transfer counts in *units* of ``min_frame_bytes``: frames of about 5 ms of the link and a
window of about bandwidth x round trip, both smaller than a chunk, and it assembles chunks from
them. A cut link loses what it was carrying: the frame in flight (a partly received MQTT
message is dropped) and whatever sat in the link's queue behind a lost packet. With 256 KiB
frames and a window of chunks, five cuts of a 16 Mbit/s link cost 22% of a 5 MB model on the
wire; with 16 KiB frames and a window the link's buffer holds, 9% (of which curl pays 7 on a
clean link: benchmarks/link.py). Timeouts, retries with backoff, reconnects, rate-limit
answers and the device's own link budget (rate cap, time windows:
``edge_agent.transport.budget``) are handled here. After a reconnect only the units still
missing are asked for again; what landed is kept, and so is what arrived before the reconnect.

Errors are ngclient's download errors (``DownloadError``; ``DownloadHTTPError`` with 404 only
when the registry said "not found"), because ngclient does not wrap errors raised while chunks
are being iterated, and a timeout must never look like a 404 (that would end a root walk).
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from tuf.api.exceptions import DownloadError, DownloadHTTPError

from edge_agent._retry import backoff_delay
from edge_agent.config import FetchSettings
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.window import WindowControl
from edge_agent.trust.protocol import (
    BAD_REQUEST,
    BUSY,
    NOT_FOUND,
    OK,
    TOO_MANY_REQUESTS,
    ChunkRequest,
    ChunkResponse,
)


class TransferCancelled(DownloadError):
    """The caller cancelled the transfer (shutdown, a newer update, a time limit)."""


Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) as chunks land."""

Chunk = tuple[int, "bytes | memoryview", int, int]
"""(chunk index, chunk bytes, file size, CRC-32 of the chunk) as a transfer yields them."""

_Frame = tuple[int, "bytes | memoryview", int, int]
"""(first unit, frame bytes, file size, CRC-32 of the frame) as frames land."""


@dataclass
class _Range:
    """One range request in flight: the chunks it still owes and when it was last heard."""

    first: int
    end: int  # the range's end (bytes): its last frame may be shorter than the others
    missing: set[int]
    heard_at: float
    sent_at: float
    frame: int
    answered: bool = False


@dataclass
class _Part:
    """A chunk whose frames are landing: its bytes so far, whole once ``filled`` is its size."""

    data: bytearray
    filled: int = 0


class ChunkTransfer:
    """Fetches the chunks of one registry path with range requests; yields them as they land.

    Scheduling counts in units (``unit`` bytes: ``min_frame_bytes`` when it divides a chunk,
    else the chunk). At most ``window.window`` units are requested and not yet received
    (adapted to the link unless ``settings.adaptive_window`` is off); each request asks for up
    to half of that (``settings.chunks_per_request`` chunks at most) consecutive units, which
    the registry streams back in frames of ``window.frame_bytes()``.
    A range that stays silent for ``chunk_timeout_s`` has its missing units re-asked (with
    backoff); a unit that times out ``max_attempts`` times fails the transfer.
    """

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
        self._pending: deque[int] = deque()
        self._not_before: dict[int, float] = {}
        self._attempts: dict[int, int] = {}
        self._ranges: dict[str, _Range] = {}
        self._in_flight = 0
        self._total: int | None = None
        self._max_total: int | None = None
        self._skip: frozenset[int] = frozenset()
        self._first_run = 1
        chunk = settings.chunk_bytes
        split = settings.min_frame_bytes < chunk and chunk % settings.min_frame_bytes == 0
        self.unit = settings.min_frame_bytes if split else chunk
        """Bytes per scheduling unit: the smallest frame (a chunk when chunks are not split)."""
        self._per_chunk = chunk // self.unit
        cap = settings.window * self._per_chunk
        floor = min(settings.window_floor, cap) if settings.adaptive_window else cap
        self.window = WindowControl(self.unit, floor, cap, max_frame=chunk)
        self.budget = link.budget
        self._budget_not_before = 0.0
        self.paused_s = 0.0
        """Seconds the budget's time windows held this transfer (not counted by the deadline)."""

    def chunks(
        self, total: int | None, skip: Iterable[int] = (), max_total: int | None = None
    ) -> Iterator[Chunk]:
        """Fetch every chunk of the file except ``skip``, in about file order.

        ``total`` is the file size when known (signed metadata says it); when None, the first
        answer's size is used, and a size over ``max_total`` fails the transfer before anything
        is planned for it (a registry's claim is not trusted with memory). A registry whose
        size differs from ``total`` fails the transfer (wrong length). Chunks that came in
        several frames are assembled here; a chunk that came whole is passed on as it came.
        """
        chunk, per = self.settings.chunk_bytes, self._per_chunk
        skip_units = (c * per + j for c in skip for j in range(per))
        parts: dict[int, _Part] = {}
        for first, data, size, crc in self._frames(total, skip_units, max_total):
            index, within = divmod(first * self.unit, chunk)
            length = min(chunk, size - index * chunk)
            if within == 0 and len(data) == length:
                yield index, data, size, crc
                continue
            part = parts.get(index)
            if part is None:
                part = parts[index] = _Part(bytearray(length))
            part.data[within : within + len(data)] = data  # frames never straddle chunks
            part.filled += len(data)
            if part.filled >= length:
                del parts[index]
                yield index, memoryview(part.data), size, zlib.crc32(part.data)

    def _frames(
        self, total: int | None, skip: Iterable[int], max_total: int | None
    ) -> Iterator[_Frame]:
        """Every frame of the file except the units in ``skip``, as they land."""
        run = self._first_run = self._run_for(self.window.window)
        self._skip = frozenset(skip)
        self._total = total
        self._max_total = max_total
        first = range(self._count(total)) if total is not None else range(run)
        self._pending = deque(i for i in first if i not in self._skip)
        inbox: queue.Queue[ChunkResponse] = queue.Queue(maxsize=self.window.cap * 4)
        generation = self.link.generation
        try:
            while self._pending or self._ranges:
                now = time.monotonic()
                self._check_alive(now)
                if self.link.generation != generation:  # reconnected: answers may be lost
                    generation = self.link.generation
                    yield from self._drain(inbox)  # what came before the cut is kept
                    for request_id in list(self._ranges):
                        self._requeue(request_id)
                    self.window.idle(now)
                if self._budget_allows(now):
                    self._fill_window(inbox, now)
                try:
                    response = inbox.get(timeout=self._wait_time(now))
                except queue.Empty:
                    response = None
                if response is not None:
                    landed = self._receive(response)
                    if landed is not None:
                        yield landed
                self._expire()
        finally:
            for request_id in self._ranges:
                self.link.forget(request_id)

    # -- steps ---------------------------------------------------------------------------

    def _count(self, total: int) -> int:
        return max(1, -(-total // self.unit))

    def _run_for(self, window: int) -> int:
        """Units per range request with ``window`` units in flight (half of it at most)."""
        return max(1, min(self.settings.chunks_per_request * self._per_chunk, window // 2))

    def _drain(self, inbox: queue.Queue[ChunkResponse]) -> Iterator[_Frame]:
        """The frames already received and not yet taken (before a reconnect forgets them)."""
        while True:
            try:
                response = inbox.get_nowait()
            except queue.Empty:
                return
            landed = self._receive(response)
            if landed is not None:
                yield landed

    def _check_alive(self, now: float) -> None:
        if self.cancel.is_set():
            raise TransferCancelled(f"download of {self.path} cancelled")
        if now > self._deadline + self.paused_s:
            raise DownloadError(
                f"download of {self.path} took longer than {self.settings.deadline_s:.0f} s; "
                "gave up (it resumes on the next try)"
            )

    def _budget_allows(self, now: float) -> bool:
        """Whether the link budget lets requests go now (outside its windows: paused).

        While paused, the time does not count against ``deadline_s`` and the window's rate
        measurement restarts afterwards (the pause is not the link's slowness).
        """
        closed = self.budget.closed() if self.budget is not None else None
        if closed is None:
            return now >= self._budget_not_before
        if not self._ranges:
            self.paused_s += 0.2  # about one loop turn (_wait_time caps a turn at 0.2 s)
            self.window.idle(now)
        return False

    def _fill_window(self, inbox: queue.Queue[ChunkResponse], now: float) -> None:
        """Send range requests while the window has room for a whole range (or the rest)."""
        if not self.link.client.connected:
            return  # requests sent now would sit in paho's queue; wait for the reconnect
        pending, unit = self._pending, self.unit
        window = self.window.window
        run = self._run_for(window)  # never more than the window holds: it may be small
        if self.budget is not None and self.budget.max_bytes_per_s is not None:
            # under a rate cap a range is at most the budget's burst, so the cap holds over
            # a short transfer too (one big range would arrive at link speed, then wait)
            run = min(run, max(1, int(self.budget.burst_bytes) // unit))
        waiting: deque[int] = deque()  # retries still backing off keep their place in front
        while pending:
            room = window - self._in_flight
            if room < min(run, len(pending)):
                break
            first = pending.popleft()
            if self._not_before.get(first, 0.0) > now:
                waiting.append(first)
                continue
            count, suited = 1, self.window.frame_bytes()
            most = self._aligned_run(first, min(run, room), suited)
            while (
                pending
                and count < most
                and pending[0] == first + count
                and self._not_before.get(pending[0], 0.0) <= now
            ):
                pending.popleft()
                count += 1
            if self.budget is not None:
                wait = self.budget.take(count * unit)
                if wait > 0:  # over the rate cap: ask when the bucket has refilled
                    self._budget_not_before = now + wait
                    pending.extendleft(reversed(range(first, first + count)))
                    break
            offset, frame = first * unit, _aligned_frame(first * unit, suited)
            request = ChunkRequest(secrets.token_hex(8), self.path, offset, count * unit, frame)
            self.link.expect(request.id, inbox)
            self._ranges[request.id] = _Range(
                first, offset + count * unit, set(range(first, first + count)), now, now, frame
            )
            self._in_flight += count
            self.link.send(request)
            self.requests_sent += 1
        pending.extendleft(reversed(waiting))

    def _aligned_run(self, first: int, most: int, suited: int) -> int:
        """Units for a range from unit ``first``: at most ``most``, ending on a frame boundary.

        A range that ends mid-frame makes the next one start there, and a frame must start at
        a multiple of its size: ranges of any length would soon be answered in the smallest
        frames only (on loopback, a third of the speed). So a range ends where a frame of the
        size the link suits ends, and one that starts off that grid (after a cut) runs only
        to it.
        """
        frame = suited // self.unit
        to_grid = -first % frame
        if to_grid:
            return min(most, to_grid)
        return max(min(most, frame), most - most % frame)

    def _wait_time(self, now: float) -> float:
        timeout = self.settings.chunk_timeout_s
        wakeups = [r.heard_at + timeout for r in self._ranges.values()]
        wakeups += [t for t in self._not_before.values() if t > now]
        if self._budget_not_before > now:
            wakeups.append(self._budget_not_before)
        soonest = min(wakeups, default=now + 0.2)
        return min(max(soonest - now, 0.005), 0.2)

    def _receive(self, response: ChunkResponse) -> _Frame | None:
        """The frame a response delivers, if it really is one this transfer still needs."""
        rng = self._ranges.get(response.id)
        if rng is None or response.path != self.path:
            return None  # late, duplicate or foreign: ignored
        unit = self.unit
        if response.status != OK:
            if response.offset != rng.first * unit:
                return None
            if self._total is None and response.status == BAD_REQUEST and _past_end(response):
                # a range asked for before the size was known starts past a short file's end,
                # and its refusal overtook the first range's data: the size is learnt from it
                self._learn_total(response.total)
                return None
            if self._total is not None and response.total and response.total != self._total:
                self._wrong_length(response.total)  # e.g. "offset beyond the end" of a short file
            self._refused(response)
            delay = max(response.retry_after, self.settings.backoff_base_s)
            self._requeue(response.id, delay)
            return None
        index, misaligned = divmod(response.offset, unit)
        if misaligned or index not in rng.missing:
            return None
        if self._total is not None and response.total != self._total:
            self._wrong_length(response.total)
        end = min(response.offset + rng.frame, rng.end, response.total)
        expected = end - response.offset
        if not (expected == len(response.data) and (expected > 0 or response.total == 0)):
            return None
        units = range(index, index + max(1, -(-expected // unit)))
        if not rng.missing.issuperset(units):
            return None
        if self._total is None:
            self._learn_total(response.total)
        rng.missing.difference_update(units)
        rng.heard_at = time.monotonic()
        if not rng.answered:  # the first frame of a range: a round trip (and a frame's time)
            rng.answered = True
            self.window.round_trip(rng.heard_at, rng.sent_at)
        self.window.landed(rng.heard_at, len(response.data))
        self._in_flight -= len(units)
        lost = sorted(i for i in rng.missing if i < index)
        if lost:  # a range streams in order, so what it skipped was lost on the way
            self._retry(response.id, lost, delay=0.0)
        elif not rng.missing:
            del self._ranges[response.id]
            self.link.forget(response.id)
        crc = response.crc32 if response.crc32 is not None else zlib.crc32(response.data)
        return index, response.data, response.total, crc

    def _wrong_length(self, total: int) -> NoReturn:
        raise DownloadError(
            f"registry says {self.path} has {total} bytes, but {self._total} are "
            "expected (wrong length: a tampered or mismatched file)"
        )

    def _refused(self, response: ChunkResponse) -> None:
        """Raise for a definite refusal; return for 'busy, retry later'."""
        if response.status == NOT_FOUND:
            raise DownloadHTTPError(f"registry has no {self.path}", NOT_FOUND)
        if response.status == BAD_REQUEST:
            raise DownloadError(
                f"registry refused the request for {self.path}: {response.reason or 'bad request'}"
            )
        assert response.status in (TOO_MANY_REQUESTS, BUSY)

    def _learn_total(self, total: int) -> None:
        """The file size is known now: drop requests beyond its end, queue the rest."""
        if self._max_total is not None and total > self._max_total:
            raise DownloadError(
                f"registry says {self.path} has {total} bytes; more than the {self._max_total} "
                "allowed for it (refused before fetching)"
            )
        self._total = total
        count = self._count(total)
        for request_id, rng in list(self._ranges.items()):
            beyond = {i for i in rng.missing if i >= count}
            rng.missing -= beyond
            self._in_flight -= len(beyond)
            if not rng.missing:
                del self._ranges[request_id]
                self.link.forget(request_id)
        # Before the size was known only the first range's chunks were queued or asked for.
        later = (i for i in range(self._first_run, count) if i not in self._skip)
        self._pending = deque([*(i for i in self._pending if i < count), *later])

    def _requeue(self, request_id: str, delay: float = 0.0) -> None:
        """Put a range's missing chunks back in front of the queue (after ``delay`` s)."""
        rng = self._ranges.pop(request_id)
        self.link.forget(request_id)
        self._in_flight -= len(rng.missing)
        if delay:
            not_before = time.monotonic() + delay
            for index in rng.missing:
                self._not_before[index] = not_before
        self._pending.extendleft(sorted(rng.missing, reverse=True))

    def _expire(self) -> None:
        now = time.monotonic()
        for request_id, rng in list(self._ranges.items()):
            if now - rng.heard_at >= self.settings.chunk_timeout_s:
                self._retry(request_id, sorted(rng.missing))

    def _retry(self, request_id: str, indices: list[int], delay: float | None = None) -> None:
        """Ask again for ``indices`` of a range (timed out or lost), counting an attempt each.

        ``delay`` None backs off exponentially with the attempts. Retries go first in the
        queue, so a dead registry is noticed fast.
        """
        settings = self.settings
        tries = 0
        for index in indices:
            tries = max(tries, self._attempts.get(index, 0) + 1)
            self._attempts[index] = self._attempts.get(index, 0) + 1
        if tries >= settings.max_attempts:
            raise DownloadError(
                f"the registry did not answer chunk {indices[0]} of {self.path} "
                f"after {tries} tries ({settings.chunk_timeout_s:g} s each); is "
                "`edge-agent registry serve` running and reachable?"
            )
        if delay is None:
            delay = backoff_delay(tries, settings.backoff_base_s, settings.backoff_max_s)
        rng = self._ranges[request_id]
        rng.missing.difference_update(indices)
        self._in_flight -= len(indices)
        if not rng.missing:
            del self._ranges[request_id]
            self.link.forget(request_id)
        not_before = time.monotonic() + delay
        for index in indices:
            self._not_before[index] = not_before
        self._pending.extendleft(reversed(indices))


def fetch_stream(
    link: RegistryLink,
    path: str,
    settings: FetchSettings,
    cancel: threading.Event | None = None,
    max_bytes: int = 8 * 1024 * 1024,
) -> Iterator[bytes]:
    """The bytes of a small file (metadata), in order, without knowing its size up front.

    Chunks that land early are held until their turn: at most a window of them.
    """
    # a unit is a chunk: frames are sized before the first answer tells the file's size
    whole = settings.model_copy(update={"min_frame_bytes": settings.chunk_bytes})
    transfer = ChunkTransfer(link, path, whole, cancel)
    held: dict[int, bytes] = {}
    next_index = 0
    for index, data, _total, _crc in transfer.chunks(None, max_total=max_bytes):
        held[index] = bytes(data)
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1


def _aligned_frame(offset: int, suited: int) -> int:
    """Bytes per frame for a range from ``offset``: the ``suited`` size halved until aligned.

    Frame sizes are units doubled (up to a chunk, dividing it), and a frame starts at a
    multiple of its size, so frames never straddle a chunk.
    """
    frame = suited
    while offset % frame:
        frame //= 2
    return frame


def _past_end(response: ChunkResponse) -> bool:
    """Whether a refusal says its range starts past the end of a file of ``total`` bytes."""
    return response.offset > response.total
