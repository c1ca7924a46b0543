"""Health of a device or a model version over a time window: what the rollout gates read.

Health values (:func:`device_health`, :func:`version_health`) answer, over a time window: error
rate, latency p95 (from the merged DDSketches of every report in the window, so it is the p95 of
all inferences, not an average of p95s), shadow agreement (from the devices' rollout evidence),
drift alarm state (latest window per device) and how many devices are online. Every function
takes the store and ``now`` explicitly, so tests can pin the clock.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.fleet.monitor.store import Store
from edge_agent.telemetry.latency import sketch_from_dict
from edge_agent.wire.states import DeviceState

__all__ = [
    "STALE_S",
    "Health",
    "device_health",
    "in_drift_alarm",
    "is_online",
    "latest_drift",
    "merged_p95_ms",
    "version_health",
]

STALE_S = 120.0
"""A device not heard from for this long counts as offline even without a last will."""


@dataclass(frozen=True)
class Health:
    """Gate values for one device or one model version over a window."""

    scope: str
    subject: str
    window_s: float
    devices: int = 0
    online: int = 0
    inferences: int = 0
    errors: int = 0
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    shadow_agreement: float | None = None
    shadow_compared: int = 0
    drift_alarm: bool = False
    drift_alarm_devices: list[str] = field(default_factory=list)

    @property
    def all_online(self) -> bool:
        """Every device in scope is online (False when there are none)."""
        return self.devices > 0 and self.online == self.devices

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the API's)."""
        return {**asdict(self), "all_online": self.all_online}


def is_online(device: dict[str, Any], now: float, stale_s: float = STALE_S) -> bool:
    """Online or degraded, and heard from within ``stale_s``. Pure."""
    return (
        device.get("state") != DeviceState.OFFLINE and now - float(device["last_seen"]) <= stale_s
    )


def merged_p95_ms(sketches: Iterable[str | None], fallback: Iterable[float | None]) -> float | None:
    """p95 (ms) of the union of DDSketches; the max of reported p95s when none parse. Pure."""
    merged = None
    for text in sketches:
        if not text:
            continue
        try:
            sketch = sketch_from_dict(json.loads(text))
        except (ValueError, TypeError):
            continue
        if merged is None:
            merged = sketch
        else:
            try:
                merged.merge(sketch)
            except Exception:  # different accuracy: keep what merged so far
                continue
    if merged is not None and merged.count > 0:
        value = merged.get_quantile_value(0.95)
        return None if value is None else value * 1000.0
    values = [v for v in fallback if v is not None]
    return max(values) if values else None


def _agreement(events: list[dict[str, Any]]) -> tuple[float | None, int]:
    """Agreement weighted by comparisons, from rollout evidence. Pure."""
    total = agreed = 0.0
    for event in events:
        try:
            evidence = json.loads(event["detail"]) if event.get("detail") else {}
        except ValueError:
            continue
        agreement, compared = evidence.get("agreement"), evidence.get("compared") or 0
        if isinstance(agreement, (int, float)) and isinstance(compared, (int, float)):
            weight = max(float(compared), 1.0)
            total += weight
            agreed += float(agreement) * weight
    return (agreed / total if total else None), int(total)


def latest_drift(store: Store, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """The newest drift window of each (device, model) matching ``where``."""
    return store.rows(
        "SELECT d.device_id, d.model, d.time, d.input_alarm, d.prediction_alarm, "
        "d.quality_alarm, d.input_severity, d.prediction_severity, d.quality_severity, "
        "d.features, d.samples FROM drift d JOIN (SELECT device_id, model, MAX(time) AS t "
        f"FROM drift WHERE {where} GROUP BY device_id, model) m "
        "ON d.device_id = m.device_id AND d.model = m.model AND d.time = m.t",
        params,
    )


def in_drift_alarm(row: dict[str, Any]) -> bool:
    """A drift row with any of its three alarms raised."""
    return "alarm" in (row["input_alarm"], row["prediction_alarm"], row["quality_alarm"])


def device_health(
    store: Store, device_id: str, now: float, window_s: float = 300.0, model: str | None = None
) -> Health:
    """Gate values of one device (optionally one of its models) over the last ``window_s``."""
    since = now - window_s
    model_sql, model_params = ("AND model = ?", [model]) if model else ("", [])
    loads = store.rows(
        "SELECT count, errors, p95, sketch FROM model_load WHERE device_id = ? AND time >= ? "
        + model_sql,
        [device_id, since, *model_params],
    )
    devices = store.rows("SELECT state, last_seen FROM devices WHERE device_id = ?", [device_id])
    events = store.rows(
        "SELECT detail FROM events WHERE device_id = ? AND kind = 'rollout' AND time >= ? "
        "AND detail IS NOT NULL " + model_sql,
        [device_id, since, *model_params],
    )
    drift = latest_drift(store, "device_id = ? " + model_sql, [device_id, *model_params])
    return _health("device", device_id, window_s, now, loads, devices, events, drift)


def version_health(
    store: Store,
    model: str,
    version: str,
    now: float,
    window_s: float = 300.0,
    devices: Collection[str] | None = None,
) -> Health:
    """Gate values of the devices running ``model`` at ``version``, over ``window_s``.

    ``devices`` limits every value to those devices (a rollout's cohort): without it a device
    outside the rollout that reports the same model and version would count in the gates, and
    its errors could fail a wave it is not part of. Rows are filtered here rather than with an
    ``IN`` list so a cohort of any size works on SQLite and PostgreSQL alike.
    """
    since = now - window_s
    members = None if devices is None else set(devices)

    def keep(device_id: str) -> bool:
        return members is None or device_id in members

    loads = [
        r
        for r in store.rows(
            "SELECT device_id, count, errors, p95, sketch FROM model_load WHERE model = ? "
            "AND version = ? AND time >= ?",
            [model, version, since],
        )
        if keep(r["device_id"])
    ]
    running = [
        d
        for d in store.rows(
            "SELECT d.device_id, d.state, d.last_seen FROM devices d JOIN device_models m "
            "ON d.device_id = m.device_id WHERE m.model = ? AND m.version = ?",
            [model, version],
        )
        if keep(d["device_id"])
    ]
    events = [
        e
        for e in store.rows(
            "SELECT device_id, detail FROM events WHERE kind = 'rollout' AND model = ? "
            "AND version = ? AND time >= ? AND detail IS NOT NULL",
            [model, version, since],
        )
        if keep(e["device_id"])
    ]
    ids = {d["device_id"] for d in running}
    drift = [
        r
        for r in latest_drift(store, "model = ? AND time >= ?", [model, since])
        if r["device_id"] in ids
    ]
    return _health("version", f"{model}@{version}", window_s, now, loads, running, events, drift)


def _health(
    scope: str,
    subject: str,
    window_s: float,
    now: float,
    loads: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    events: list[dict[str, Any]],
    drift: list[dict[str, Any]],
) -> Health:
    count = sum(int(r["count"]) for r in loads)
    errors = sum(int(r["errors"]) for r in loads)
    agreement, compared = _agreement(events)
    alarmed = sorted({r["device_id"] for r in drift if in_drift_alarm(r)})
    return Health(
        scope=scope,
        subject=subject,
        window_s=window_s,
        devices=len(devices),
        online=sum(1 for d in devices if is_online(d, now)),
        inferences=count,
        errors=errors,
        error_rate=errors / (count + errors) if count + errors else None,
        latency_p95_ms=merged_p95_ms((r["sketch"] for r in loads), (r["p95"] for r in loads)),
        shadow_agreement=agreement,
        shadow_compared=compared,
        drift_alarm=bool(alarmed),
        drift_alarm_devices=alarmed,
    )
