"""Where a pipeline's results go: an MQTT results topic, a local JSON-lines file.

Every result is serialised to JSON once per frame (:func:`encode_result`) and the same bytes go
to every sink. A result record::

    {"pipeline": "door-cam", "model": "digits32", "version": "1", "delegate": "xnnpack",
     "frame": "42", "time": 1718000000.123, "latency_ms": 0.61, "result": {...}}

``result`` is what the postprocessor made (see ``edge_agent.pipeline.postprocess``).
Sinks never block the pipeline for long and never raise for a transient failure: the MQTT sink
drops results while the broker is away (counted; results are live data, the outbox is for
telemetry), the file sink counts write errors (a full disk) and carries on.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Protocol

from edge_agent.config import JsonlSink as JsonlSettings
from edge_agent.config import MqttSink as MqttSinkSettings
from edge_agent.config import SinkSettings
from edge_agent.errors import ConfigError
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient

log = logging.getLogger(__name__)


def encode_result(record: dict[str, Any]) -> bytes:
    """Compact JSON bytes of a result record."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False, default=str).encode()


class Sink(Protocol):
    """A destination of result records."""

    def write(self, encoded: bytes) -> None:
        """Send one encoded record (see :func:`encode_result`)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters, JSON-able."""
        ...

    def close(self) -> None:
        """Flush and release."""
        ...


class MqttResultSink:
    """Publishes results on ``ea/v1/<device>/results/<pipeline>``."""

    def __init__(
        self, client: MqttClient, device_id: str, pipeline: str, settings: MqttSinkSettings
    ) -> None:
        """Publish through ``client`` (owned by the caller)."""
        self.client = client
        self.topic = topics.device_results(device_id, pipeline)
        self.settings = settings
        self.published = 0
        self.dropped_offline = 0
        self._count = 0

    def write(self, encoded: bytes) -> None:
        """Publish every ``every_n``-th result; drop (counted) while disconnected."""
        self._count += 1
        if self._count % self.settings.every_n:
            return
        if not self.client.connected:
            self.dropped_offline += 1
            return
        self.client.publish(self.topic, encoded, qos=self.settings.qos, retain=self.settings.retain)
        self.published += 1

    def stats(self) -> dict[str, Any]:
        """Published and dropped counts."""
        return {
            "type": "mqtt",
            "topic": self.topic,
            "published": self.published,
            "dropped_offline": self.dropped_offline,
        }

    def close(self) -> None:
        """Nothing to release (the client belongs to the agent)."""


class JsonlFileSink:
    """Appends one JSON line per result; rotates to ``<path>.1`` past ``max_bytes``.

    Each line is written with one ``write`` call and flushed, so after a crash the file holds
    whole lines, except possibly a torn last one, which readers should skip.
    """

    def __init__(self, settings: JsonlSettings) -> None:
        """Open (append) the file, creating its folder."""
        self.path = settings.path
        self.max_bytes = settings.max_bytes
        self.written = 0
        self.errors = 0
        self.last_error = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        except OSError as exc:
            raise ConfigError(f"jsonl sink: cannot open {self.path} for appending: {exc}") from None
        self._size = self._file.tell()

    def write(self, encoded: bytes) -> None:
        """Append one line (counts a failure instead of raising)."""
        try:
            if self._size + len(encoded) + 1 > self.max_bytes and self._size > 0:
                self._rotate()
            self._file.write(encoded + b"\n")
            self._file.flush()
            self._size += len(encoded) + 1
            self.written += 1
        except OSError as exc:
            self.errors += 1
            self.last_error = f"{self.path}: {exc}"
            if self.errors == 1 or self.errors % 100 == 0:
                log.warning("jsonl sink: cannot write (%d failures): %s", self.errors, exc)

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._file = self.path.open("ab")
        self._size = 0

    def stats(self) -> dict[str, Any]:
        """Lines written and write errors."""
        return {
            "type": "jsonl",
            "path": str(self.path),
            "written": self.written,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def build_sink(
    settings: SinkSettings, pipeline: str, *, device_id: str | None, client: MqttClient | None
) -> Sink:
    """A sink for ``settings``; ConfigError when an MQTT sink has no broker to use."""
    if isinstance(settings, JsonlSettings):
        return JsonlFileSink(settings)
    if client is None or device_id is None:
        raise ConfigError(
            f"pipeline {pipeline}: an `mqtt` sink needs `broker:` in the agent config"
        )
    return MqttResultSink(client, device_id, pipeline, settings)
