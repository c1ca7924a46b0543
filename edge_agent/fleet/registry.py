"""The registry server: serves a TUF repository's files to devices over MQTT, in chunks.

Flow: devices publish chunk requests on ``registry/req/<device>``; the paho thread only decodes
them, applies the per-device rate limit and queues them; a few worker threads read the chunk
(``os.pread``, nothing else in memory) and answer on ``registry/resp/<device>``. A watcher
publishes the newest timestamp version, retained, on ``registry/notify`` whenever the
repository changes. The server holds no keys and makes no trust decisions: devices verify
everything with TUF, so a compromised registry can withhold updates but not forge them.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.trust.protocol import (
    BAD_REQUEST,
    BUSY,
    MAX_CHUNK_BYTES,
    NOT_FOUND,
    OK,
    TOO_MANY_REQUESTS,
    ChunkRequest,
    ChunkResponse,
    decode_request,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrySettings:
    """How the registry serves."""

    max_chunk_bytes: int = 256 * 1024  # largest chunk answered; must stay under the broker limit
    rate_per_device: float = 500.0  # sustained requests per second per device
    burst_per_device: int = 64  # requests a device may send at once
    workers: int = 4  # threads reading chunks and publishing answers
    queue_limit: int = 4096  # queued requests before answering "busy"
    notify_poll_s: float = 1.0  # how often to look for a new timestamp

    def __post_init__(self) -> None:
        if not 256 <= self.max_chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"max_chunk_bytes must be 256..{MAX_CHUNK_BYTES}")
        if self.rate_per_device <= 0 or self.burst_per_device < 1 or self.workers < 1:
            raise ValueError("rate_per_device > 0, burst_per_device >= 1 and workers >= 1")


class TokenBucket:
    """Allows ``rate`` events per second with bursts of ``burst``. Pure: time is passed in."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> float:
        """0.0 when the event is allowed (a token is taken), else seconds until one is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class DeviceRateLimiter:
    """One token bucket per device; idle devices are forgotten so memory stays bounded."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, device: str) -> float:
        """0.0 when ``device`` may be served now, else the seconds it should wait."""
        now = self.clock()
        bucket = self._buckets.get(device)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_idle(now)
            bucket = self._buckets[device] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        for device, bucket in list(self._buckets.items()):
            if now - bucket.updated > full_after:
                del self._buckets[device]


class RegistryServer:
    """Answers chunk requests from ``repo_dir`` through ``client`` until stopped."""

    def __init__(
        self, repo_dir: Path, client: MqttClient, settings: RegistrySettings | None = None
    ) -> None:
        self.repo_dir = repo_dir.resolve()
        self.client = client
        self.settings = settings or RegistrySettings()
        self.limiter = DeviceRateLimiter(
            self.settings.rate_per_device, self.settings.burst_per_device
        )
        self._queue: queue.Queue[tuple[str, ChunkRequest] | None] = queue.Queue(
            self.settings.queue_limit
        )
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        """Chunk requests served, by (device, path)."""
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

    def requests_for(self, device: str, path_prefix: str = "") -> int:
        """How many chunk requests of ``device`` under ``path_prefix`` were served."""
        with self._stats_lock:
            return sum(
                n
                for (d, p), n in self.requests.items()
                if d == device and p.startswith(path_prefix)
            )

    # -- paho thread ---------------------------------------------------------------------

    def _on_request(self, message: Message) -> None:
        parsed = topics.parse(message.topic)
        request = decode_request(message.payload)
        if parsed is None or parsed.channel != "registry/req" or request is None:
            self._count("garbage")
            return
        device = parsed.device_id
        retry_after = self.limiter.check(device)
        if retry_after > 0:
            # A small "429, retry after" costs far less than the chunk it replaces, and a
            # device that is told backs off instead of timing out and counting failures.
            self._count("rate-limited")
            self._answer(
                device,
                ChunkResponse(
                    request.id,
                    request.path,
                    request.offset,
                    TOO_MANY_REQUESTS,
                    reason="rate limited",
                    retry_after=round(retry_after, 3),
                ),
            )
            return
        try:
            self._queue.put_nowait((device, request))
        except queue.Full:
            self._count("busy")
            self._answer(
                device,
                ChunkResponse(
                    request.id,
                    request.path,
                    request.offset,
                    BUSY,
                    reason="registry busy",
                    retry_after=0.5,
                ),
            )

    # -- workers -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            device, request = item
            try:
                self._answer(device, self._serve(device, request))
            except Exception:  # one bad request must not stop a worker
                log.exception("serving %s to %s failed", request.path, device)

    def _serve(self, device: str, request: ChunkRequest) -> ChunkResponse:
        if request.length > self.settings.max_chunk_bytes:
            self._count("bad")
            return ChunkResponse(
                request.id,
                request.path,
                request.offset,
                BAD_REQUEST,
                reason=f"length {request.length} exceeds the registry's "
                f"max chunk of {self.settings.max_chunk_bytes} bytes",
            )
        path = (self.repo_dir / request.path).resolve()
        if not path.is_relative_to(self.repo_dir) or not path.is_file():
            self._count("not-found")
            return ChunkResponse(
                request.id, request.path, request.offset, NOT_FOUND, reason="no such file"
            )
        with self._stats_lock:
            self.requests[(device, request.path)] += 1
        fd = os.open(path, os.O_RDONLY)
        try:
            total = os.fstat(fd).st_size
            if request.offset > total:
                self._count("bad")
                return ChunkResponse(
                    request.id,
                    request.path,
                    request.offset,
                    BAD_REQUEST,
                    total=total,
                    reason=f"offset beyond the end ({total} B)",
                )
            data = os.pread(fd, request.length, request.offset)
        finally:
            os.close(fd)
        return ChunkResponse(request.id, request.path, request.offset, OK, total=total, data=data)

    def _answer(self, device: str, response: ChunkResponse) -> None:
        self.client.publish(topics.registry_response(device), response.encode(), qos=1)

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
            payload = json.dumps({"timestamp_version": version}).encode()
            self.client.publish(topics.registry_notify(), payload, qos=1, retain=True)
            self.announced_version = version

    def _timestamp_version(self) -> int:
        try:
            raw = json.loads((self.repo_dir / "metadata" / "timestamp.json").read_bytes())
            version = raw["signed"]["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return version if isinstance(version, int) else 0
