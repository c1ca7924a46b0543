"""What the agents publish, parsed into rows for the monitor's store. Pure: no I/O, no clock.

Every MQTT message the monitor receives goes through :func:`parse_message`, which returns a list
of typed rows (a telemetry report becomes one ``TelemetryRow`` plus one ``LoadRow`` per model
and delegate) or raises :class:`PayloadError` naming why it was dropped. Nothing a device sends
can crash ingest: wrong JSON types, missing keys, huge or non-UTF-8 payloads all end here.

Dedupe keys: outbox envelopes carry an ``id`` (``<outbox>-<seq>``), which is prefixed with the
device id (a device cannot collide with another's records). Rollout events and sample chunks
have no envelope; their key is derived from the device and the content.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from edge_agent.capture.protocol import decode_chunk
from edge_agent.transport.topics import DeviceChannel, parse

MAX_PROFILE_BYTES = 256 * 1024
"""A drift window profile larger than this is stored without its profile (counted)."""
MAX_TEXT = 512
"""Longest free text (reason, version, names) kept from a payload."""
CLOCK_SKEW_S = 300.0
"""A device time further than this in the future (or 7 days in the past) is not trusted."""
ROLLOUT_STATES = frozenset(
    {
        "shadow",
        "rejected",
        "active",
        "rolled_back",
        "watch_passed",
        "idle",
        "downloading",
        "verified",
        "staged",
        "failed",
    }
)


class PayloadError(ValueError):
    """A message the monitor cannot use; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


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
    models: tuple[tuple[str, str, str, bool], ...] = ()
    """(name, version, delegate, degraded) per served model."""


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


# -- small validated readers -------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)[:limit]
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: Any) -> int:
    number = _num(value)
    return int(number) if number is not None and abs(number) < 2**62 else 0


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError("wrong_shape", f"{where} is not a JSON object")
    return value


def device_time(value: Any, received: float) -> float:
    """The device's timestamp when it is plausible, else the time the monitor received it."""
    stamp = _num(value)
    if stamp is None or stamp > received + CLOCK_SKEW_S or stamp < received - 7 * 86400:
        return received
    return stamp


def _key(device_id: str, record_id: Any) -> str:
    if not isinstance(record_id, str) or not record_id or len(record_id) > 128:
        raise PayloadError("wrong_shape", "envelope 'id' is missing or not a short string")
    return f"{device_id}/{record_id}"


def _content_key(prefix: str, device_id: str, payload: bytes) -> str:
    return f"{device_id}/{prefix}-{hashlib.sha1(payload).hexdigest()[:24]}"


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError("not_json", str(exc)[:120]) from None


# -- per channel ---------------------------------------------------------------------------


def parse_message(topic: str, payload: bytes, received: float, max_bytes: int) -> Parsed:
    """Rows from one MQTT message; PayloadError (with a counter ``reason``) when unusable."""
    where = parse(topic)
    if where is None:
        raise PayloadError("bad_topic", f"{topic[:120]!r} is not a device topic")
    if len(payload) > max_bytes:
        raise PayloadError("too_large", f"{len(payload)} bytes > {max_bytes}")
    device = where.device_id
    if where.channel == DeviceChannel.STATUS.value:
        return Parsed([parse_status(device, _obj(_json(payload), "status"), received)])
    if where.channel == DeviceChannel.TELEMETRY.value:
        return Parsed(parse_telemetry(device, _obj(_json(payload), "telemetry"), received))
    if where.channel == DeviceChannel.DRIFT.value:
        return Parsed(parse_drift(device, _obj(_json(payload), "drift"), received))
    if where.channel == DeviceChannel.ROLLOUT.value:
        return Parsed([parse_rollout(device, payload, received)])
    if where.channel == DeviceChannel.SAMPLES.value:
        return parse_sample_chunk(device, payload, received)
    raise PayloadError("bad_topic", f"channel {where.channel!r} is not ingested")


def parse_status(device: str, doc: dict[str, Any], received: float) -> StatusRow:
    """A status document or last will. The topic, not the payload, names the device."""
    state = doc.get("state")
    if state not in ("online", "degraded", "offline"):
        raise PayloadError("wrong_shape", f"status state {str(state)[:40]!r} is unknown")
    models = []
    raw_models = doc.get("models")
    if isinstance(raw_models, list):
        for entry in raw_models[:64]:
            if isinstance(entry, dict) and _text(entry.get("name")):
                models.append(
                    (
                        _text(entry.get("name"), 128) or "",
                        _text(entry.get("version"), 128) or "",
                        _text(entry.get("delegate"), 64) or "",
                        bool(entry.get("degraded", False)),
                    )
                )
    last_will = "time" not in doc
    return StatusRow(
        device_id=device,
        state=state,
        time=received if last_will else device_time(doc.get("time"), received),
        agent_version=_text(doc.get("agent_version"), 64),
        device_class=_text(doc.get("device_class"), 64),
        api=_text(doc.get("api"), 256),
        uptime_s=_num(doc.get("uptime_s")),
        models=tuple(models),
    )


def _envelope(
    device: str, doc: dict[str, Any], received: float
) -> tuple[str, float, dict[str, Any]]:
    key = _key(device, doc.get("id"))
    data = _obj(doc.get("data"), "envelope 'data'")
    return key, device_time(doc.get("created"), received), data


def parse_telemetry(device: str, doc: dict[str, Any], received: float) -> list[Row]:
    """A telemetry envelope: the report (sensors + per-model load) or a power-policy event."""
    key, when, data = _envelope(device, doc, received)
    if "event" in data:
        return [_event_row(key, device, when, data)]
    system = data.get("system") if isinstance(data.get("system"), dict) else {}
    assert isinstance(system, dict)
    rows: list[Row] = [
        TelemetryRow(
            key=key,
            device_id=device,
            time=when,
            state=_text(data.get("state"), 16),
            battery_pct=_num(system.get("battery_pct")),
            max_temp_c=_num(system.get("max_temp_c")),
            power_w=_num(system.get("power_w")),
            cpu_pct=_num(system.get("cpu_usage_pct")),
            memory_pct=_num(system.get("memory_used_pct")),
            energy_j=_num(data.get("energy_per_inference_j")),
            power_mode=_text(data.get("power_mode"), 32),
        )
    ]
    versions: dict[str, str] = {}
    if isinstance(data.get("models"), list):
        for entry in data["models"]:
            if isinstance(entry, dict) and _text(entry.get("name")):
                versions[str(entry["name"])] = _text(entry.get("version"), 128) or ""
    load = data.get("load")
    entries = load.get("models") if isinstance(load, dict) else None
    seen: set[tuple[str, str]] = set()
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not _text(entry.get("model")):
            continue
        model = _text(entry.get("model"), 128) or ""
        delegate = _text(entry.get("delegate"), 64) or ""
        if (model, delegate) in seen:
            continue
        seen.add((model, delegate))
        latency = entry.get("latency_ms") if isinstance(entry.get("latency_ms"), dict) else {}
        assert isinstance(latency, dict)
        sketch = entry.get("sketch")
        rows.append(
            LoadRow(
                key=key,
                device_id=device,
                time=when,
                model=model,
                version=_text(entry.get("version"), 128) or versions.get(model),
                delegate=delegate,
                count=max(_int(entry.get("count")), 0),
                errors=max(_int(entry.get("errors")), 0),
                throughput=_num(entry.get("throughput_per_s")),
                p50=_num(latency.get("p50")),
                p95=_num(latency.get("p95")),
                p99=_num(latency.get("p99")),
                sketch=json.dumps(sketch, separators=(",", ":"))
                if isinstance(sketch, dict)
                else None,
            )
        )
    return rows


def _event_row(key: str, device: str, when: float, data: dict[str, Any]) -> EventRow:
    kind = _text(data.get("event"), 32) or "event"
    reason: str | None
    if kind == "drift_alarm":
        state = _text(data.get("to"), 16)
        reason = f"{_text(data.get('signal'), 32)}: {data.get('from')} -> {data.get('to')}"
    else:
        state = _text(data.get("mode"), 32)
        reasons = data.get("reasons")
        reason = "; ".join(str(r)[:120] for r in reasons[:8]) if isinstance(reasons, list) else None
    return EventRow(
        key=key,
        device_id=device,
        time=when,
        kind=kind,
        model=_text(data.get("model"), 128),
        version=None,
        state=state,
        reason=(reason or "")[:MAX_TEXT] or None,
        detail=json.dumps(data, separators=(",", ":"), default=str)[:4096],
    )


def parse_drift(device: str, doc: dict[str, Any], received: float) -> list[Row]:
    """A drift envelope: a window report, or a drift alarm transition event."""
    key, when, data = _envelope(device, doc, received)
    if "event" in data:
        return [_event_row(key, device, when, data)]
    model = _text(data.get("model"), 128)
    if not model:
        raise PayloadError("wrong_shape", "drift report without a model")
    signals = _obj(data.get("signals", {}), "drift 'signals'")
    severity: dict[str, float | None] = {}
    alarm: dict[str, str | None] = {}
    features: dict[str, float] = {}
    for name in ("input", "prediction", "quality"):
        signal = signals.get(name)
        signal = signal if isinstance(signal, dict) else {}
        severity[name] = _num(signal.get("severity"))
        level = signal.get("alarm")
        alarm[name] = level if level in ("ok", "alarm") else None
        if name == "input":
            detail = signal.get("detail") if isinstance(signal.get("detail"), dict) else {}
            assert isinstance(detail, dict)
            ratios = detail.get("ratios")
            if isinstance(ratios, dict):
                for feature, ratio in list(ratios.items())[:256]:
                    number = _num(ratio)
                    if number is not None:
                        features[str(feature)[:64]] = round(number, 4)
    profile = data.get("profile")
    profile_json = None
    if isinstance(profile, dict):
        profile_json = json.dumps(profile, separators=(",", ":"))
        if len(profile_json) > MAX_PROFILE_BYTES:
            profile_json = None
    return [
        DriftRow(
            key=key,
            device_id=device,
            time=when,
            model=model,
            window=_int(data.get("window")),
            samples=max(_int(data.get("samples")), 0),
            severity=severity,
            alarm=alarm,
            features=json.dumps(features, separators=(",", ":")),
            profile=profile_json,
        )
    ]


def parse_rollout(device: str, payload: bytes, received: float) -> EventRow:
    """A swap event (``time``, ``evidence``) or an update transition (``timestamp``)."""
    doc = _obj(_json(payload), "rollout event")
    state = doc.get("state")
    if state not in ROLLOUT_STATES:
        raise PayloadError("wrong_shape", f"rollout state {str(state)[:40]!r} is unknown")
    evidence = doc.get("evidence")
    return EventRow(
        key=_content_key("r", device, payload),
        device_id=device,
        time=device_time(doc.get("time", doc.get("timestamp")), received),
        kind="rollout",
        model=_text(doc.get("model"), 128),
        version=_text(doc.get("version"), 128),
        state=str(state),
        reason=_text(doc.get("reason")),
        detail=json.dumps(evidence, separators=(",", ":"))[:4096]
        if isinstance(evidence, dict)
        else None,
    )


def parse_sample_chunk(device: str, payload: bytes, received: float) -> Parsed:
    """The first chunk of a sample carries its metadata; later chunks are acknowledged only.

    The payload bytes themselves stay on the device side of the wire: the monitor keeps what
    the dashboard shows (prediction, confidence, latency, size), bounded per row.
    """
    try:
        header, _data = decode_chunk(payload)
    except ValueError as exc:
        raise PayloadError("wrong_shape", str(exc)[:160]) from None
    meta = header.get("meta")
    if header.get("offset") != 0 or not isinstance(meta, dict):
        return Parsed(skipped="sample_chunk")
    latency_s = _num(meta.get("latency_s"))
    prediction = meta.get("prediction")
    return Parsed(
        [
            SampleRow(
                key=f"{device}/{_text(header.get('id'), 64)}",
                device_id=device,
                time=device_time(meta.get("created"), received),
                model=_text(meta.get("model"), 128),
                version=_text(meta.get("version"), 128),
                delegate=_text(meta.get("delegate"), 64),
                latency_ms=None if latency_s is None else latency_s * 1000.0,
                strategy=_text(meta.get("strategy"), 64),
                prediction=int(prediction)
                if isinstance(prediction, int) and not isinstance(prediction, bool)
                else None,
                confidence=_num(meta.get("confidence")),
                size=max(_int(header.get("size")), 0),
            )
        ]
    )
