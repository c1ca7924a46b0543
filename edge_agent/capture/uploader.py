"""Background upload of captured samples over MQTT: resumable, no duplicates, under conditions.

The uploader thread waits until the client is connected and :func:`upload_blocked` allows
(power, time window, the device's link windows), then sends the oldest samples not yet
uploaded, chunk by chunk (:mod:`edge_agent.capture.protocol`), QoS 1, paced by a token bucket
under ``max_bytes_per_s`` and by the link budget it shares with model downloads
(:class:`~edge_agent.transport.budget.LinkBudget`, ``link:`` in the config). Up to
``inflight_chunks`` are published, then their PUBACKs awaited in order; the acknowledged
byte offset is committed to the store, so after a broker outage, a restart or kill -9 the
sample resumes where the broker last acknowledged it. A sample marked uploaded (every byte
acknowledged) is never sent again; a chunk whose PUBACK was lost may be sent twice, which the
receiver dedupes by (id, offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_agent._retry import TokenBucket
from edge_agent.capture.conditions import upload_blocked
from edge_agent.capture.protocol import encode_chunk
from edge_agent.capture.store import SampleInfo, SampleStore
from edge_agent.config import UploadSettings
from edge_agent.errors import SampleStoreError
from edge_agent.telemetry.sensors import PowerSupply, read_power_supply
from edge_agent.transport import topics
from edge_agent.transport.budget import LinkBudget, local_minute_of_day
from edge_agent.transport.client import MqttClient, wait_acknowledged
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.chunks import SampleChunkHeader

log = logging.getLogger(__name__)


def system_power_supplies(pattern: str = "/sys/class/power_supply/*") -> list[PowerSupply]:
    """The power supplies Linux reports (empty where there are none, e.g. most servers)."""
    supplies = []
    for directory in sorted(Path("/").glob(pattern.lstrip("/"))):
        supply = read_power_supply(directory)
        if supply is not None:
            supplies.append(supply)
    return supplies


class SampleUploader:
    """Uploads a store's samples to ``ea/v1/<device>/samples``."""

    def __init__(
        self,
        store: SampleStore,
        client: MqttClient,
        device_id: str,
        settings: UploadSettings,
        *,
        power_supplies: Callable[[], Sequence[PowerSupply]] = system_power_supplies,
        minute_of_day: Callable[[], int] = local_minute_of_day,
        poll_s: float = 1.0,
        ack_timeout_s: float = 10.0,
        budget: LinkBudget | None = None,
    ) -> None:
        """Nothing is sent before :meth:`start`.

        ``budget`` is the link budget shared with model downloads; its rate cap and windows
        apply on top of ``settings``.
        """
        self.budget = budget
        self.store = store
        self.client = client
        self.topic = topics.device_topic(device_id, DeviceChannel.SAMPLES)
        self.settings = settings
        self._power_supplies = power_supplies
        self._minute_of_day = minute_of_day
        self._poll_s = poll_s
        self._ack_timeout_s = ack_timeout_s
        self._bucket = TokenBucket(
            settings.max_bytes_per_s,
            burst=float(max(settings.chunk_bytes, settings.max_bytes_per_s or 0.0)),
            now=time.monotonic(),
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples_sent = 0
        self.chunks_sent = 0
        self.bytes_sent = 0
        self.retries = 0
        self.waiting_for = "not started"

    def start(self) -> None:
        """Start the upload thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sample-uploader", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for work now (a sample was captured, the broker came back)."""
        self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop after the chunk window in flight (progress so far is kept)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        """Samples, chunks and bytes sent, retries, and what uploads wait for."""
        return {
            "samples_sent": self.samples_sent,
            "chunks_sent": self.chunks_sent,
            "bytes_sent": self.bytes_sent,
            "retries": self.retries,
            "waiting_for": self.waiting_for,
        }

    # -- the loop --------------------------------------------------------------------------

    def _idle(self, reason: str) -> None:
        self.waiting_for = reason
        self._wake.wait(self._poll_s)
        self._wake.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.client.connected:
                self._idle("broker connection")
                continue
            try:
                blocked = upload_blocked(
                    self.settings, self._minute_of_day(), self._power_supplies()
                )
            except Exception as exc:  # a sensor read must not kill the thread
                blocked = f"conditions unreadable: {exc}"
            if blocked is None and self.budget is not None:
                blocked = self.budget.closed()
            if blocked is not None:
                self._idle(blocked)
                continue
            try:
                pending = self.store.pending_upload(limit=16)
            except Exception as exc:
                self._idle(f"store unreadable: {exc}")
                continue
            if not pending:
                self._idle("samples")
                continue
            self.waiting_for = ""
            for info in pending:
                if self._stop.is_set() or not self._upload(info):
                    break

    def upload_pending(self) -> int:
        """Upload everything pending now, on this thread; returns the samples completed.

        Stops at the first sample that could not be finished (CLI, tests).
        """
        done = 0
        while True:
            pending = self.store.pending_upload(limit=16)
            if not pending:
                return done
            for info in pending:
                if not self._upload(info):
                    return done
                done += 1

    def _upload(self, info: SampleInfo) -> bool:
        """Send the rest of one sample; True when it is completely acknowledged."""
        try:
            data = self.store.payload_bytes(info.id)
        except SampleStoreError as exc:
            log.warning("uploader: %s; dropping it from the store", exc)
            self.store.delete(info.id)
            return True
        chunk = self.settings.chunk_bytes
        offset = info.uploaded_bytes if info.uploaded_bytes < len(data) else 0
        meta = {
            k: v
            for k, v in info.as_dict().items()
            if k not in ("seq", "id", "size", "sha256", "uploaded_bytes", "uploaded")
        }
        meta["format"] = "npz"
        while offset < len(data):
            window: list[tuple[int, int, Any]] = []
            position = offset
            while position < len(data) and len(window) < self.settings.inflight_chunks:
                if self._stop.is_set() or not self.client.connected:
                    break
                piece = data[position : position + chunk]
                header = SampleChunkHeader(
                    id=info.id,
                    offset=position,
                    size=len(data),
                    sha256=info.sha256,
                    meta=meta if position == 0 else None,
                )
                delay = self._bucket.book(time.monotonic(), len(piece))
                if self.budget is not None:
                    delay = max(delay, self.budget.book(len(piece)))
                if delay > 0 and self._stop.wait(delay):
                    break
                message = self.client.publish(self.topic, encode_chunk(header, piece), qos=1)
                window.append((position, len(piece), message))
                position += len(piece)
            acked = offset
            for start, length, message in window:
                if not self._acknowledged(message):
                    break
                acked = start + length
                self.chunks_sent += 1
                self.bytes_sent += length
            if acked > offset:
                self.store.mark_progress(info.id, acked)
            if acked < position or not window:
                self.retries += 1
                return False
            offset = acked
        self.store.mark_uploaded(info.id)
        self.samples_sent += 1
        if self.settings.delete_after_upload:
            self.store.delete(info.id)
        return True

    def _acknowledged(self, message: Any) -> bool:
        return wait_acknowledged(message, self._ack_timeout_s)  # False: the connection went
