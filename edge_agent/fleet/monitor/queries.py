"""Read side: what the dashboard shows and what the rollout controller gates on.

Health gates (:func:`device_health`, :func:`version_health`) answer, over a time window: error
rate, latency p95 (from the merged DDSketches of every report in the window, so it is the p95 of
all inferences, not an average of p95s), shadow agreement (from the devices' rollout evidence),
drift alarm state (latest window per device) and how many devices are online. Every function
takes the store and ``now`` explicitly, so tests can pin the clock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.errors import ModelError
from edge_agent.fleet.monitor.store import Store
from edge_agent.telemetry.latency import sketch_from_dict
from edge_agent.telemetry.profile import Profile, merge

STALE_S = 120.0
"""A device not heard from for this long counts as offline even without a last will."""
MAX_POINTS = 600
"""Longest series returned to the dashboard (evenly thinned beyond)."""


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
    return device.get("state") != "offline" and now - float(device["last_seen"]) <= stale_s


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


def _latest_drift(store: Store, where: str, params: list[Any]) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT d.device_id, d.model, d.time, d.input_alarm, d.prediction_alarm, "
        "d.quality_alarm, d.input_severity, d.prediction_severity, d.quality_severity, "
        "d.features, d.samples FROM drift d JOIN (SELECT device_id, model, MAX(time) AS t "
        f"FROM drift WHERE {where} GROUP BY device_id, model) m "
        "ON d.device_id = m.device_id AND d.model = m.model AND d.time = m.t",
        params,
    )


def _alarmed(row: dict[str, Any]) -> bool:
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
    drift = _latest_drift(store, "device_id = ? " + model_sql, [device_id, *model_params])
    return _health("device", device_id, window_s, now, loads, devices, events, drift)


def version_health(
    store: Store, model: str, version: str, now: float, window_s: float = 300.0
) -> Health:
    """Gate values of every device running ``model`` at ``version``, over ``window_s``."""
    since = now - window_s
    loads = store.rows(
        "SELECT count, errors, p95, sketch FROM model_load WHERE model = ? AND version = ? "
        "AND time >= ?",
        [model, version, since],
    )
    devices = store.rows(
        "SELECT d.device_id, d.state, d.last_seen FROM devices d JOIN device_models m "
        "ON d.device_id = m.device_id WHERE m.model = ? AND m.version = ?",
        [model, version],
    )
    events = store.rows(
        "SELECT detail FROM events WHERE kind = 'rollout' AND model = ? AND version = ? "
        "AND time >= ? AND detail IS NOT NULL",
        [model, version, since],
    )
    running = {d["device_id"] for d in devices}
    drift = [
        r
        for r in _latest_drift(store, "model = ? AND time >= ?", [model, since])
        if r["device_id"] in running
    ]
    return _health("version", f"{model}@{version}", window_s, now, loads, devices, events, drift)


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
    alarmed = sorted({r["device_id"] for r in drift if _alarmed(r)})
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


# -- dashboard ------------------------------------------------------------------------------


def _models_by_device(store: Store) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows(
        "SELECT device_id, model, version, delegate, degraded FROM device_models "
        "ORDER BY device_id, model"
    ):
        result.setdefault(row["device_id"], []).append(
            {
                "name": row["model"],
                "version": row["version"],
                "delegate": row["delegate"],
                "degraded": bool(row["degraded"]),
            }
        )
    return result


def firing_alerts(store: Store, device_id: str | None = None) -> list[dict[str, Any]]:
    """Firing alerts, newest first (one device's, or all)."""
    where, params = ("AND device_id = ?", [device_id]) if device_id else ("", [])
    return store.rows(
        "SELECT akey, rule, device_id, subject, severity, message, state, started, updated "
        f"FROM alerts WHERE state = 'firing' {where} ORDER BY started DESC",
        params,
    )


def recent_alerts(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts firing or resolved, newest first."""
    return store.rows(
        "SELECT akey, rule, device_id, subject, severity, message, state, started, updated, "
        "resolved FROM alerts ORDER BY updated DESC LIMIT ?",
        [limit],
    )


def fleet_overview(store: Store, now: float) -> dict[str, Any]:
    """Every device with its state, versions, delegates and alert count; fleet totals."""
    models = _models_by_device(store)
    alerts = Counter(a["device_id"] for a in firing_alerts(store))
    latest = {
        r["device_id"]: r
        for r in store.rows(
            "SELECT t.device_id, t.battery_pct, t.max_temp_c, t.power_mode FROM telemetry t "
            "JOIN (SELECT device_id, MAX(time) AS m FROM telemetry GROUP BY device_id) x "
            "ON t.device_id = x.device_id AND t.time = x.m"
        )
    }
    devices = []
    states: Counter[str] = Counter()
    versions: dict[str, Counter[str]] = {}
    for row in store.rows("SELECT * FROM devices ORDER BY device_id"):
        online = is_online(row, now)
        state = row["state"] if online else "offline"
        states[state] += 1
        for m in models.get(row["device_id"], []):
            versions.setdefault(m["name"], Counter())[m["version"]] += 1
        sensors = latest.get(row["device_id"], {})
        devices.append(
            {
                "device_id": row["device_id"],
                "state": state,
                "online": online,
                "last_seen": row["last_seen"],
                "agent_version": row["agent_version"],
                "device_class": row["device_class"],
                "models": models.get(row["device_id"], []),
                "alerts": alerts.get(row["device_id"], 0),
                "battery_pct": sensors.get("battery_pct"),
                "max_temp_c": sensors.get("max_temp_c"),
                "power_mode": sensors.get("power_mode"),
            }
        )
    return {
        "time": now,
        "devices": devices,
        "counts": {"devices": len(devices), **states},
        "versions": {m: dict(c) for m, c in versions.items()},
        "alerts_firing": sum(alerts.values()),
    }


def _thin(rows: list[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def device_detail(store: Store, device_id: str, now: float, since: float) -> dict[str, Any] | None:
    """One device: status, series (sensors, latency per model), drift, samples, alerts."""
    found = store.rows("SELECT * FROM devices WHERE device_id = ?", [device_id])
    if not found:
        return None
    device = found[0]
    sensors = _thin(
        store.rows(
            "SELECT time, battery_pct, max_temp_c, power_w, cpu_pct, memory_pct, energy_j, "
            "power_mode FROM telemetry WHERE device_id = ? AND time >= ? ORDER BY time",
            [device_id, since],
        )
    )
    latency: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows(
        "SELECT time, model, version, delegate, count, errors, throughput, p50, p95, p99 "
        "FROM model_load WHERE device_id = ? AND time >= ? ORDER BY time",
        [device_id, since],
    ):
        latency.setdefault(row.pop("model"), []).append(row)
    drift_latest = []
    for row in _latest_drift(store, "device_id = ?", [device_id]):
        row["features"] = json.loads(row["features"] or "{}")
        drift_latest.append(row)
    drift_series = store.rows(
        "SELECT time, model, input_severity, prediction_severity, quality_severity FROM drift "
        "WHERE device_id = ? AND time >= ? ORDER BY time",
        [device_id, since],
    )
    return {
        "device": {**device, "online": is_online(device, now)},
        "models": _models_by_device(store).get(device_id, []),
        "sensors": sensors,
        "latency": {m: _thin(rows) for m, rows in latency.items()},
        "drift": {"latest": drift_latest, "series": _thin(drift_series)},
        "samples": store.rows(
            "SELECT rkey, time, model, version, delegate, latency_ms, strategy, prediction, "
            "confidence, size FROM samples WHERE device_id = ? ORDER BY time DESC LIMIT 20",
            [device_id],
        ),
        "events": store.rows(
            "SELECT time, kind, model, version, state, reason FROM events WHERE device_id = ? "
            "ORDER BY time DESC LIMIT 30",
            [device_id],
        ),
        "alerts": firing_alerts(store, device_id),
    }


def rollouts(store: Store, now: float, window_s: float = 300.0) -> dict[str, Any]:
    """Per model and version: devices per rollout state (latest event each), gate values."""
    latest = store.rows(
        "SELECT e.device_id, e.model, e.version, e.state, e.reason, e.time, e.detail "
        "FROM events e JOIN (SELECT device_id, model, MAX(time) AS t FROM events "
        "WHERE kind = 'rollout' GROUP BY device_id, model) m "
        "ON e.device_id = m.device_id AND e.model = m.model AND e.time = m.t "
        "WHERE e.kind = 'rollout' ORDER BY e.model, e.device_id"
    )
    models: dict[str, dict[str, Any]] = {}
    for row in latest:
        evidence = json.loads(row.pop("detail") or "null")
        row["evidence"] = evidence
        entry = models.setdefault(row["model"] or "?", {"devices": [], "versions": {}})
        entry["devices"].append(row)
        states = entry["versions"].setdefault(row["version"] or "?", Counter())
        states[row["state"]] += 1
    for name, entry in models.items():
        entry["versions"] = {
            version: {
                "states": dict(states),
                "gates": version_health(store, name, version, now, window_s).as_dict(),
            }
            for version, states in entry["versions"].items()
        }
    return {"time": now, "models": models}


def fleet_drift(store: Store, model: str, since: float) -> dict[str, Any]:
    """Drift of ``model`` across the fleet: the merged window profile and per-feature severity.

    Profiles merge exactly (counts add up), so the fleet view is the profile of every sampled
    input since ``since``; windows built against another reference are counted, not merged.
    """
    merged: Profile | None = None
    windows = skipped = 0
    for row in store.rows(
        "SELECT profile FROM drift WHERE model = ? AND time >= ? AND profile IS NOT NULL",
        [model, since],
    ):
        try:
            profile = Profile.from_dict(json.loads(row["profile"]))
            merged = profile if merged is None else merge(merged, profile)
            windows += 1
        except (ModelError, ValueError):
            skipped += 1
    latest = _latest_drift(store, "model = ? AND time >= ?", [model, since])
    ratios: dict[str, list[float]] = {}
    for row in latest:
        for feature, ratio in json.loads(row["features"] or "{}").items():
            ratios.setdefault(feature, []).append(float(ratio))
    features = {
        name: {
            "mean": h.mean(),
            "std": h.std(),
            "count": h.count,
            "severity_mean": (sum(ratios.get(name, [])) / len(ratios[name]))
            if ratios.get(name)
            else None,
            "severity_max": max(ratios[name]) if ratios.get(name) else None,
        }
        for name, h in (merged.features.items() if merged else ())
    }
    return {
        "model": model,
        "since": since,
        "windows": windows,
        "skipped_windows": skipped,
        "samples": merged.samples if merged else 0,
        "devices": len(latest),
        "devices_in_alarm": sorted(r["device_id"] for r in latest if _alarmed(r)),
        "features": features,
    }
