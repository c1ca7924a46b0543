"""The registry server: serves a TUF repository's files to devices over MQTT, in chunks.

Flow: devices publish range requests on ``registry/req/<device>``; the paho thread only decodes
them, checks their sizes, applies the per-device rate limit (counted in chunks, so a range of
n chunks costs n) and queues them; a few worker threads stream each range back as one frame
per chunk on ``registry/resp/<device>``, reading every chunk straight into its frame buffer
(``os.preadv``; nothing else of the file is held). A watcher publishes the newest timestamp
version, retained, on ``registry/notify`` whenever the repository changes. The server holds no
keys and makes no trust decisions: devices verify everything with TUF, so a compromised
registry can withhold updates but not forge them.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent._retry import TokenBucket
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient, wait_acknowledged
from edge_agent.trust.protocol import (
    BAD_REQUEST,
    BUSY,
    MAX_CHUNK_BYTES,
    MAX_RANGE_BYTES,
    MIN_CHUNK_BYTES,
    NOT_FOUND,
    OK,
    TOO_MANY_REQUESTS,
    ChunkRequest,
    ChunkResponse,
    decode_request,
    encode_header,
    header_bytes,
)
from edge_agent.wire.notices import RegistryNotice

log = logging.getLogger(__name__)

FRAME_QOS = 0
"""Frames go out at QoS 0. Loss is the protocol's job already (a silent range is re-asked,
a gap in a range is re-asked at once, a reconnect re-asks everything in flight), and QoS 1
bought nothing on top of that: a device's session is clean, so a QoS 1 frame is lost on a
disconnect too. What QoS 1 did cost: a PUBACK per frame in each direction, and with Nagle's
algorithm on (the default of paho and Mosquitto) the small requests queued behind those
acknowledgements for up to 40 ms each, which held delivery to a tenth of the transport's speed
(see benchmarks/delivery.py)."""


@dataclass(frozen=True)
class RegistrySettings:
    """How the registry serves."""

    max_chunk_bytes: int = 256 * 1024  # largest chunk (frame) answered; under the broker limit
    max_range_bytes: int = 16 << 20  # longest range one request may ask for
    rate_per_device: float = 8192.0  # sustained chunks per second per device (512 MiB/s at 64 KiB)
    burst_per_device: int = 256  # chunks a device may ask for at once
    max_frames_per_request: int = 1024  # a dearer request is refused (no debt to run up)
    workers: int = 4  # threads reading chunks and publishing answers
    queue_limit: int = 4096  # queued requests before answering "busy"
    frames_in_flight: int = 64  # frames per worker handed to paho and not yet on the socket
    stall_s: float = 10.0  # a range whose frames cannot leave for this long is given up
    notify_poll_s: float = 1.0  # how often to look for a new timestamp
    tracked_devices: int = 10_000  # devices whose rate and served counts are remembered

    def __post_init__(self) -> None:
        if not 256 <= self.max_chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"max_chunk_bytes must be 256..{MAX_CHUNK_BYTES}")
        if not self.max_chunk_bytes <= self.max_range_bytes <= MAX_RANGE_BYTES:
            raise ValueError(f"max_range_bytes must be max_chunk_bytes..{MAX_RANGE_BYTES}")
        if self.rate_per_device <= 0 or self.burst_per_device < 1 or self.workers < 1:
            raise ValueError("rate_per_device > 0, burst_per_device >= 1 and workers >= 1")
        if self.max_frames_per_request < 1 or self.frames_in_flight < 1:
            raise ValueError("max_frames_per_request >= 1 and frames_in_flight >= 1")
        if self.tracked_devices < 1:
            raise ValueError("tracked_devices >= 1")


class DeviceRateLimiter:
    """One token bucket per device, for the ``max_devices`` most recently seen devices.

    Device ids come from topics, so anyone who can publish a request can invent them: the
    buckets are kept in least-recently-used order and the oldest is forgotten once there are
    more than ``max_devices``. A forgotten device starts again with a full bucket, which an
    attacker inventing ids gets anyway; what the bound stops is the memory (and a scan of
    every bucket per new id) growing with the number of ids ever seen.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_devices: int = 10_000,
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.max_devices = max_devices
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, device: str, cost: int = 1) -> float:
        """0.0 when ``device`` may be sent ``cost`` chunks now, else the seconds it should wait."""
        now = self.clock()
        bucket = self._buckets.get(device)
        if bucket is None:
            bucket = self._buckets[device] = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) > self.max_devices:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(device)
        return bucket.take(now, cost)


class ServedCounts:
    """File bytes served by (device, path), for the ``limit`` most recently served pairs.

    Only diagnostics and tests read these counts, so forgetting the least recently served
    pair is harmless; keeping one per device ever served was not (a registry serving a fleet
    that churns ids, or ids invented by a flood, grew it for as long as it ran). Not
    thread-safe: the server holds its stats lock around every call.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, device: str, path: str, nbytes: int) -> None:
        key = (device, path)
        self._counts[key] = self._counts.pop(key, 0) + nbytes
        while len(self._counts) > self.limit:
            self._counts.popitem(last=False)

    def total(self, device: str, path_prefix: str = "") -> int:
        """Bytes of files under ``path_prefix`` served to ``device`` (that are remembered)."""
        return sum(
            n for (d, p), n in self._counts.items() if d == device and p.startswith(path_prefix)
        )


def frames_in(request: ChunkRequest) -> int:
    """How many frames (chunks) answer ``request`` at most: what it costs the device."""
    return max(1, -(-request.length // request.frame_bytes))


class RegistryServer:
    """Answers chunk requests from ``repo_dir`` through ``client`` until stopped."""

    def __init__(
        self, repo_dir: Path, client: MqttClient, settings: RegistrySettings | None = None
    ) -> None:
        self.repo_dir = repo_dir.resolve()
        self.client = client
        self.settings = settings or RegistrySettings()
        self.limiter = DeviceRateLimiter(
            self.settings.rate_per_device,
            self.settings.burst_per_device,
            max_devices=self.settings.tracked_devices,
        )
        self._queue: queue.Queue[tuple[str, ChunkRequest] | None] = queue.Queue(
            self.settings.queue_limit
        )
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.served = ServedCounts(4 * self.settings.tracked_devices)
        """File bytes served (in frames), by (device, path); bounded."""
        self.refused: Counter[str] = Counter()
        """Requests not served, by reason (garbage, rate-limited, busy, not-found, bad)."""
        self.announced_version = 0

    def start(self) -> None:
        """Subscribe, start the workers and the notification watcher."""
        self.client.subscribe(topics.registry_requests_filter(), self._on_request)
        for i in range(self.settings.workers):
            worker = threading.Thread(target=self._work, name=f"registry-worker-{i}", daemon=True)
            worker.start()
            self._threads.append(worker)
        watcher = threading.Thread(target=self._watch, name="registry-notify", daemon=True)
        watcher.start()
        self._threads.append(watcher)

    def stop(self) -> None:
        """Stop answering (the MQTT client stays the caller's)."""
        self._stop.set()
        self.client.unsubscribe(topics.registry_requests_filter())
        for _ in range(self.settings.workers):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def served_bytes(self, device: str, path_prefix: str = "") -> int:
        """How many bytes of files under ``path_prefix`` were served to ``device``.

        Bytes, not frames: a device on a slow link asks for smaller frames (``FetchSettings.
        min_frame_bytes``), so a count of frames says little about what it fetched.
        """
        with self._stats_lock:
            return self.served.total(device, path_prefix)

    # -- paho thread ---------------------------------------------------------------------

    def _on_request(self, message: Message) -> None:
        parsed = topics.parse(message.topic)
        request = decode_request(message.payload)
        if parsed is None or parsed.channel != "registry/req" or request is None:
            self._count("garbage")
            return
        device = parsed.device_id
        problem = self._size_problem(request)
        cost = 1 if problem else frames_in(request)
        retry_after = self.limiter.check(device, cost)
        if retry_after > 0:
            # A small "429, retry after" costs far less than the chunks it replaces, and a
            # device that is told backs off instead of timing out and counting failures.
            self._count("rate-limited")
            self._refuse(device, request, TOO_MANY_REQUESTS, "rate limited", retry_after)
        elif problem:
            self._count("bad")
            self._refuse(device, request, BAD_REQUEST, problem)
        else:
            try:
                self._queue.put_nowait((device, request))
            except queue.Full:
                self._count("busy")
                self._refuse(device, request, BUSY, "registry busy", 0.5)

    def _size_problem(self, request: ChunkRequest) -> str:
        """Why the request's sizes are refused ("" when they are fine)."""
        limits = self.settings
        if request.frame_bytes > limits.max_chunk_bytes:
            return (
                f"chunk of {request.frame_bytes} bytes exceeds the registry's "
                f"max chunk of {limits.max_chunk_bytes} bytes"
            )
        if request.length > limits.max_range_bytes:
            return (
                f"range of {request.length} bytes exceeds the registry's "
                f"max range of {limits.max_range_bytes} bytes"
            )
        if request.chunk and request.chunk < MIN_CHUNK_BYTES:
            return (
                f"chunk of {request.chunk} bytes is below the registry's minimum of "
                f"{MIN_CHUNK_BYTES} bytes (every frame costs far more than its bytes)"
            )
        frames = frames_in(request)
        if frames > limits.max_frames_per_request:
            return (
                f"range of {frames} frames exceeds the {limits.max_frames_per_request} frames "
                "one request may ask for; ask for shorter ranges or bigger chunks"
            )
        return ""

    # -- workers -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            device, request = item
            try:
                self._serve(device, request)
            except Exception:  # one bad request must not stop a worker
                log.exception("serving %s to %s failed", request.path, device)

    def _serve(self, device: str, request: ChunkRequest) -> None:
        """Stream the range as frames of ``request.frame_bytes``, each read into its buffer."""
        path = (self.repo_dir / request.path).resolve()
        if not path.is_relative_to(self.repo_dir) or not path.is_file():
            self._count("not-found")
            self._refuse(device, request, NOT_FOUND, "no such file")
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            total = os.fstat(fd).st_size
            if request.offset > total:
                self._count("bad")
                self._refuse(
                    device, request, BAD_REQUEST, f"offset beyond the end ({total} B)", total=total
                )
                return
            end = min(request.offset + request.length, total)
            offset = request.offset
            sent: deque[mqtt.MQTTMessageInfo] = deque()
            while True:  # at least one frame: an empty file (or range at its end) gets one
                length = min(request.frame_bytes, end - offset)
                info = self._publish_frame(device, self._frame(request, fd, offset, length, total))
                with self._stats_lock:
                    self.served.add(device, request.path, length)
                offset += length
                if offset >= end or self._stop.is_set():
                    return
                if info is not None:
                    sent.append(info)
                if len(sent) > self.settings.frames_in_flight and not self._left(sent.popleft()):
                    self._count("stalled")  # the device re-asks for what it misses
                    log.warning("%s: frames to %s are not leaving; range given up", path, device)
                    return
        finally:
            os.close(fd)

    @staticmethod
    def _frame(request: ChunkRequest, fd: int, offset: int, length: int, total: int) -> bytearray:
        """One OK frame, the chunk read straight into it (one copy from the page cache)."""
        start = header_bytes(request.id, request.path)
        frame = bytearray(start + length)
        got = os.preadv(fd, [memoryview(frame)[start:]], offset) if length else 0
        if got < length:  # the file shrank under us: send what is there; the device re-asks
            del frame[start + got :]
        crc = zlib.crc32(memoryview(frame)[start:])
        frame[:start] = encode_header(request.id, request.path, offset, OK, total, crc)
        return frame

    def _refuse(
        self,
        device: str,
        request: ChunkRequest,
        status: int,
        reason: str,
        retry_after: float = 0.0,
        total: int = 0,
    ) -> None:
        response = ChunkResponse(
            request.id,
            request.path,
            request.offset,
            status,
            total,
            reason=reason,
            retry_after=round(retry_after, 3),
        )
        self._publish_frame(device, response.encode())

    def _left(self, info: mqtt.MQTTMessageInfo) -> bool:
        """Wait until a frame is written to the socket (paho's outgoing queue stays bounded)."""
        return wait_acknowledged(info, self.settings.stall_s)  # False: the connection is gone

    def _publish_frame(self, device: str, frame: bytes | bytearray) -> mqtt.MQTTMessageInfo | None:
        """Every frame to a device leaves through here (tests inject misbehaviour here)."""
        topic = topics.registry_response(device)
        return self.client.publish(topic, frame, qos=FRAME_QOS)  # type: ignore[arg-type]

    def _count(self, reason: str) -> None:
        with self._stats_lock:
            self.refused[reason] += 1

    # -- notifications -------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.announce_if_changed()
            self._stop.wait(self.settings.notify_poll_s)

    def announce_if_changed(self) -> None:
        """Publish the timestamp version (retained) if it is newer than the last announced."""
        version = self._timestamp_version()
        if version > self.announced_version:
            payload = RegistryNotice(timestamp_version=version).encode()
            self.client.publish(topics.registry_notify(), payload, qos=1, retain=True)
            self.announced_version = version

    def _timestamp_version(self) -> int:
        try:
            raw = json.loads((self.repo_dir / "metadata" / "timestamp.json").read_bytes())
            version = raw["signed"]["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return version if isinstance(version, int) else 0
