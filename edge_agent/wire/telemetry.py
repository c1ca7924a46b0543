"""Telemetry on ``ea/v1/<device>/telemetry``: outbox envelopes around reports and events.

The agent queues each document in its outbox (``edge_agent.telemetry.outbox``), which sends it
framed in an :class:`Envelope`: ``{"id": "<outbox>-<seq>", "seq", "priority", "created",
"data": <document>}``. The id is what the monitor dedupes redeliveries by. ``data`` is a
:class:`TelemetryReport` (latency, load, sensors, power) or, when it has an ``event`` key, a
:class:`PowerPolicyEvent`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SkipValidation, field_validator

from edge_agent.errors import WireError
from edge_agent.wire._clean import (
    Count,
    JsonList,
    JsonObject,
    MaybeFlag,
    Name,
    Number,
    Percent,
    Short,
    loads_object,
    number,
    text,
)
from edge_agent.wire._document import Document, Part
from edge_agent.wire.status import MAX_MODELS, ModelStatus, models_list

MAX_RECORD_ID = 128


class Envelope(Part):
    """The outbox's frame around one record; ``data`` is the document itself."""

    id: str
    seq: Count = 0
    priority: Short = None
    created: Number = None
    data: SkipValidation[dict[str, Any]]
    """The document (checked to be an object by :meth:`decode`, typed by :func:`decode_telemetry`
    or :func:`~edge_agent.wire.drift.decode_drift`); not copied here, it is the bulk of it."""

    @field_validator("id", mode="before")
    @classmethod
    def _record_id(cls, value: Any) -> str:
        if not isinstance(value, str) or not value or len(value) > MAX_RECORD_ID:
            raise ValueError("envelope 'id' is missing or not a short string")
        cleaned = text(value, MAX_RECORD_ID)
        assert cleaned is not None
        return cleaned

    @staticmethod
    def frame(record_id: str, seq: int, priority: str, created: float, data: bytes) -> bytes:
        """The envelope around ``data`` (an encoded document), without decoding it again.

        The outbox stores each document encoded once and frames it when it is sent, so the
        frame is written here by hand; ``decode`` reads it back.
        """
        head = (
            f'{{"id":{json.dumps(record_id)},"seq":{int(seq)},'
            f'"priority":{json.dumps(priority)},"created":{float(created)!r},"data":'
        )
        return head.encode() + data + b"}"

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview | str) -> Envelope:
        """The envelope in ``payload``; WireError ``not_json`` / ``wrong_shape`` if unusable."""
        document = loads_object(payload, "envelope")
        record_id = document.get("id")
        if not isinstance(record_id, str) or not record_id or len(record_id) > MAX_RECORD_ID:
            raise WireError("wrong_shape", "envelope 'id' is missing or not a short string")
        if not isinstance(document.get("data"), dict):
            raise WireError("wrong_shape", "envelope 'data' is not a JSON object")
        try:
            return cls.model_validate(document)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise WireError("wrong_shape", f"envelope: {str(exc)[:160]}") from None


class Latency(Part):
    """Latency quantiles of one period, in milliseconds."""

    p50: Number = None
    p95: Number = None
    p99: Number = None
    mean: Number = None
    max: Number = None


def _object(value: Any) -> Any:
    return value if isinstance(value, (dict, Part)) else {}


class ModelLoad(Part):
    """Load and latency of one (model, delegate) in one period."""

    model: Annotated[str, BeforeValidator(lambda value: text(value, 128) or "")]
    delegate: Annotated[str, BeforeValidator(lambda value: text(value, 64) or "")] = ""
    version: Name = None
    count: Count = 0
    errors: Count = 0
    throughput_per_s: Number = None
    latency_ms: Annotated[Latency, BeforeValidator(_object)] = Field(default_factory=Latency)
    sketch: JsonObject = None
    """The DDSketch (``latency.sketch_to_dict``), for exact merges across reports."""


class Load(Part):
    """What ``LatencyRecorder.collect`` returns: the period and one entry per model."""

    period_s: Number = None
    models: list[ModelLoad] = Field(default_factory=list)

    @field_validator("models", mode="before")
    @classmethod
    def _usable(cls, value: Any) -> list[Any]:
        if not isinstance(value, list):
            return []
        return [
            entry
            for entry in value[: MAX_MODELS * 8]
            if isinstance(entry, ModelLoad)
            or (isinstance(entry, dict) and text(entry.get("model")))
        ]


class System(Part):
    """Sensor readings (``SystemSnapshot.as_dict``); the monitor keeps these five."""

    battery_pct: Percent = None
    max_temp_c: Annotated[float | None, BeforeValidator(lambda v: _in(v, -100.0, 500.0))] = None
    power_w: Annotated[float | None, BeforeValidator(lambda v: _in(v, 0.0, 1e6))] = None
    cpu_usage_pct: Percent = None
    memory_used_pct: Percent = None


def _in(value: Any, low: float, high: float) -> float | None:
    return number(value, low, high)


class TelemetryReport(Document):
    """One period's report from ``AgentTelemetry.report``."""

    WHAT = "telemetry report"

    device_id: Name = None
    state: Annotated[str | None, BeforeValidator(lambda value: text(value, 16))] = None
    models: list[ModelStatus] = Field(default_factory=list)
    load: Annotated[Load, BeforeValidator(_object)] = Field(default_factory=Load)
    system: Annotated[System, BeforeValidator(_object)] = Field(default_factory=System)
    energy_per_inference_j: Number = None
    power_mode: Annotated[str | None, BeforeValidator(lambda value: text(value, 32))] = None
    outbox: JsonObject = None

    _models = field_validator("models", mode="before")(models_list)

    def versions(self) -> dict[str, str]:
        """Model name -> active version, from the report's model list."""
        return {m.name: m.version or "" for m in self.models}


class PowerPolicyEvent(Document):
    """A switch of the power policy (``PowerDecision.report`` plus ``event``).

    Or what the light variant's swap did for ``model``: ``variant_swap`` is active, rejected,
    restored or rolled_back, and ``model_variant`` the light model serving (None: its own).
    """

    WHAT = "power policy event"

    event: Annotated[str, BeforeValidator(lambda value: text(value, 32) or "event")]
    model: Name = None
    mode: Annotated[str | None, BeforeValidator(lambda value: text(value, 32))] = None
    battery_saving: MaybeFlag = None
    thermal_throttling: MaybeFlag = None
    fps: Number = None
    model_variant: Short = None
    variant_swap: Short = None
    reasons: JsonList = Field(default_factory=list)

    def reason(self) -> str | None:
        """The reasons joined for display (at most eight, each at most 120 characters)."""
        joined = "; ".join(str(r)[:120] for r in self.reasons[:8])
        return joined[:512] or None


def decode_telemetry(
    data: dict[str, Any], *, cleaned: bool = False
) -> TelemetryReport | PowerPolicyEvent:
    """The document inside a telemetry envelope (``cleaned``: it came from ``Envelope.decode``)."""
    if "event" in data:
        return PowerPolicyEvent.from_object(data, cleaned=cleaned)
    return TelemetryReport.from_object(data, cleaned=cleaned)
