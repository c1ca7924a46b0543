"""What the agents publish, parsed into rows for the monitor's store. Pure: no I/O, no clock.

Every MQTT message the monitor receives goes through :func:`parse_message`, which decodes it
with the wire contract (:mod:`edge_agent.wire`, where text and numbers are sanitised) and
returns a list of typed rows (a telemetry report becomes one ``TelemetryRow`` plus one
``LoadRow`` per model and delegate) or raises :class:`PayloadError` (the wire's
``WireError``) naming why it was dropped. Nothing a device sends can crash ingest or make a
row the store cannot write: wrong JSON types, missing keys, lone surrogates, NUL, huge or
non-UTF-8 payloads all end here.

Dedupe keys: outbox envelopes carry an ``id`` (``<outbox>-<seq>``), which is prefixed with the
device id (a device cannot collide with another's records). Rollout events and sample chunks
have no envelope; their key is derived from the device and the content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import WireError
from edge_agent.transport.topics import DeviceChannel, parse
from edge_agent.wire import chunks
from edge_agent.wire._clean import MAX_TEXT, dumps_text, number, text
from edge_agent.wire.drift import SIGNALS, DriftAlarmEvent, DriftReport, decode_drift
from edge_agent.wire.status import Status
from edge_agent.wire.telemetry import Envelope, PowerPolicyEvent, TelemetryReport, decode_telemetry
from edge_agent.wire.transitions import SwapEvent, Transition, decode_rollout

MAX_PROFILE_BYTES = 256 * 1024
"""A drift window profile larger than this is stored without its profile (counted)."""
CLOCK_SKEW_S = 300.0
"""A device time further than this in the future (or 7 days in the past) is not trusted."""
PayloadError = WireError
"""A message the monitor cannot use; ``reason`` is a short counter label."""


@dataclass(frozen=True)
class StatusRow:
    """The retained status of a device (or its last will)."""

    device_id: str
    state: str
    time: float
    agent_version: str | None = None
    device_class: str | None = None
    api: str | None = None
    uptime_s: float | None = None
    models: tuple[tuple[str, str, str, bool, str | None], ...] = ()
    """(name, version, delegate, degraded, variant) per served model (variant: the release's
    model file the device runs, None for a model that did not come from the registry)."""


@dataclass(frozen=True)
class TelemetryRow:
    """System sensors and state of one telemetry report."""

    key: str
    device_id: str
    time: float
    state: str | None
    battery_pct: float | None
    max_temp_c: float | None
    power_w: float | None
    cpu_pct: float | None
    memory_pct: float | None
    energy_j: float | None
    power_mode: str | None


@dataclass(frozen=True)
class LoadRow:
    """Latency and load of one (model, delegate) in one telemetry report."""

    key: str
    device_id: str
    time: float
    model: str
    version: str | None
    delegate: str
    count: int
    errors: int
    throughput: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    sketch: str | None
    """The DDSketch as JSON (``latency.sketch_to_dict``), for exact merges across reports."""


@dataclass(frozen=True)
class DriftRow:
    """One closed drift window."""

    key: str
    device_id: str
    time: float
    model: str
    window: int
    samples: int
    severity: dict[str, float | None]
    alarm: dict[str, str | None]
    features: str
    """JSON: feature -> severity ratio (>= 1 drifting)."""
    profile: str | None


@dataclass(frozen=True)
class EventRow:
    """A discrete event: rollout transition, drift alarm, power policy switch, status change."""

    key: str
    device_id: str
    time: float
    kind: str
    model: str | None
    version: str | None
    state: str | None
    reason: str | None
    detail: str | None


@dataclass(frozen=True)
class SampleRow:
    """Metadata of a sampled input/output (payload bytes are not stored)."""

    key: str
    device_id: str
    time: float
    model: str | None
    version: str | None
    delegate: str | None
    latency_ms: float | None
    strategy: str | None
    prediction: int | None
    confidence: float | None
    size: int


Row = StatusRow | TelemetryRow | LoadRow | DriftRow | EventRow | SampleRow


@dataclass
class Parsed:
    """The rows of one message."""

    rows: list[Row] = field(default_factory=list)
    skipped: str | None = None
    """Set when the message is valid but carries nothing to store (a later sample chunk)."""


def device_time(value: Any, received: float) -> float:
    """The device's timestamp when it is plausible, else the time the monitor received it."""
    stamp = number(value)
    if stamp is None or stamp > received + CLOCK_SKEW_S or stamp < received - 7 * 86400:
        return received
    return stamp


def _content_key(prefix: str, device_id: str, payload: bytes) -> str:
    return f"{device_id}/{prefix}-{hashlib.sha1(payload).hexdigest()[:24]}"


def _compact(value: Any) -> str:
    return dumps_text(value)


# -- per channel ---------------------------------------------------------------------------


def parse_message(topic: str, payload: bytes, received: float, max_bytes: int) -> Parsed:
    """Rows from one MQTT message; PayloadError (with a counter ``reason``) when unusable."""
    where = parse(topic)
    if where is None:
        raise PayloadError("bad_topic", f"{text(topic, 120)!r} is not a device topic")
    if len(payload) > max_bytes:
        raise PayloadError("too_large", f"{len(payload)} bytes > {max_bytes}")
    device = where.device_id
    if where.channel == DeviceChannel.STATUS.value:
        return Parsed([parse_status(device, Status.decode(payload), received)])
    if where.channel == DeviceChannel.TELEMETRY.value:
        return Parsed(parse_telemetry(device, Envelope.decode(payload), received))
    if where.channel == DeviceChannel.DRIFT.value:
        return Parsed(parse_drift(device, Envelope.decode(payload), received))
    if where.channel == DeviceChannel.ROLLOUT.value:
        return Parsed([parse_rollout(device, payload, received)])
    if where.channel == DeviceChannel.SAMPLES.value:
        return parse_sample_chunk(device, payload, received)
    raise PayloadError("bad_topic", f"channel {where.channel!r} is not ingested")


def parse_status(device: str, status: Status, received: float) -> StatusRow:
    """A status document or last will. The topic, not the payload, names the device."""
    return StatusRow(
        device_id=device,
        state=status.state.value,
        time=received if status.is_last_will else device_time(status.time, received),
        agent_version=status.agent_version,
        device_class=status.device_class,
        api=text(status.api, 256),
        uptime_s=status.uptime_s,
        models=tuple(
            (m.name, m.version or "", (m.delegate or "")[:64], m.degraded, m.variant)
            for m in status.models
        ),
    )


def parse_telemetry(device: str, envelope: Envelope, received: float) -> list[Row]:
    """A telemetry envelope: the report (sensors + per-model load) or a power-policy event."""
    key, when = f"{device}/{envelope.id}", device_time(envelope.created, received)
    document = decode_telemetry(envelope.data, cleaned=True)
    if not isinstance(document, TelemetryReport):
        return [_event_row(key, device, when, document)]
    system = document.system
    rows: list[Row] = [
        TelemetryRow(
            key=key,
            device_id=device,
            time=when,
            state=document.state,
            battery_pct=system.battery_pct,
            max_temp_c=system.max_temp_c,
            power_w=system.power_w,
            cpu_pct=system.cpu_usage_pct,
            memory_pct=system.memory_used_pct,
            energy_j=document.energy_per_inference_j,
            power_mode=document.power_mode,
        )
    ]
    versions = document.versions()
    seen: set[tuple[str, str]] = set()
    for entry in document.load.models:
        if (entry.model, entry.delegate) in seen:
            continue
        seen.add((entry.model, entry.delegate))
        latency = entry.latency_ms
        rows.append(
            LoadRow(
                key=key,
                device_id=device,
                time=when,
                model=entry.model,
                version=entry.version or versions.get(entry.model),
                delegate=entry.delegate,
                count=entry.count,
                errors=entry.errors,
                throughput=entry.throughput_per_s,
                p50=latency.p50,
                p95=latency.p95,
                p99=latency.p99,
                sketch=None if entry.sketch is None else _compact(entry.sketch),
            )
        )
    return rows


def _event_row(
    key: str, device: str, when: float, event: PowerPolicyEvent | DriftAlarmEvent
) -> EventRow:
    if not isinstance(event, DriftAlarmEvent) and event.event == "drift_alarm":
        event = DriftAlarmEvent.from_object(event.as_object(), cleaned=True)  # on telemetry
    kind: str = event.event
    state: str | None
    reason: str | None
    if isinstance(event, DriftAlarmEvent):
        state, reason = event.to, event.reason()
    else:
        state, reason = event.mode, event.reason()
    return EventRow(
        key=key,
        device_id=device,
        time=when,
        kind=kind,
        model=event.model,
        version=None,
        state=state,
        reason=(reason or "")[:MAX_TEXT] or None,
        detail=_compact(event.as_object())[:4096],
    )


def parse_drift(device: str, envelope: Envelope, received: float) -> list[Row]:
    """A drift envelope: a window report, or a drift alarm transition event."""
    key, when = f"{device}/{envelope.id}", device_time(envelope.created, received)
    document = decode_drift(envelope.data, cleaned=True)
    if not isinstance(document, DriftReport):
        return [_event_row(key, device, when, document)]
    profile_json = None if document.profile is None else _compact(document.profile)
    if profile_json is not None and len(profile_json) > MAX_PROFILE_BYTES:
        profile_json = None
    return [
        DriftRow(
            key=key,
            device_id=device,
            time=when,
            model=document.model,
            window=document.window,
            samples=document.samples,
            severity={name: document.signal(name).severity for name in SIGNALS},
            alarm={name: document.signal(name).alarm for name in SIGNALS},
            features=_compact(document.signal("input").ratios()),
            profile=profile_json,
        )
    ]


def parse_rollout(device: str, payload: bytes, received: float) -> EventRow:
    """A swap event (``time``, ``evidence``) or an update transition (``timestamp``)."""
    event = decode_rollout(payload)
    if isinstance(event, Transition):
        stamp: float | None = event.timestamp
        version = None if event.version is None else str(event.version)
        reason: str | None = event.reason
        evidence = None
    else:
        assert isinstance(event, SwapEvent)
        stamp, version, reason, evidence = event.time, event.version, event.reason, event.evidence
    return EventRow(
        key=_content_key("r", device, payload),
        device_id=device,
        time=device_time(stamp, received),
        kind="rollout",
        model=event.model,
        version=version,
        state=event.state.value,
        reason=reason,
        detail=None if evidence is None else _compact(evidence)[:4096],
    )


def parse_sample_chunk(device: str, payload: bytes, received: float) -> Parsed:
    """The first chunk of a sample carries its metadata; later chunks are acknowledged only.

    The payload bytes themselves stay on the device side of the wire: the monitor keeps what
    the dashboard shows (prediction, confidence, latency, size), bounded per row.
    """
    header, _data = chunks.decode_sample_chunk(payload)
    meta = header.sample_meta()
    if header.offset != 0 or meta is None:
        return Parsed(skipped="sample_chunk")
    return Parsed(
        [
            SampleRow(
                key=f"{device}/{header.id}",
                device_id=device,
                time=device_time(meta.created, received),
                model=meta.model,
                version=meta.version,
                delegate=meta.delegate,
                latency_ms=None if meta.latency_s is None else meta.latency_s * 1000.0,
                strategy=meta.strategy,
                prediction=meta.prediction,
                confidence=meta.confidence,
                size=header.size,
            )
        ]
    )
