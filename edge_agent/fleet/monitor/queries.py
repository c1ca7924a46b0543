"""Read side for the dashboard and the JSON API: fleet overview, device detail, rollouts, drift.

Each view is one function of the store and ``now`` (passed explicitly, so tests pin the clock)
that returns JSON-able data. Health over a window (error rate, merged p95, agreement, drift
alarms, online devices) is :mod:`edge_agent.fleet.monitor.health`; the rollout view reuses it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from edge_agent.errors import ModelError
from edge_agent.fleet.monitor.health import (
    in_drift_alarm,
    is_online,
    latest_drift,
    version_health,
)
from edge_agent.fleet.monitor.store import Store
from edge_agent.telemetry.profile import Profile, merge
from edge_agent.wire.states import DeviceState

__all__ = [
    "MAX_POINTS",
    "device_detail",
    "firing_alerts",
    "fleet_drift",
    "fleet_overview",
    "recent_alerts",
    "rollouts",
]

MAX_POINTS = 600
"""Longest series returned to the dashboard (evenly thinned beyond)."""


def _models_by_device(store: Store) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows(
        "SELECT device_id, model, version, delegate, degraded, variant FROM device_models "
        "ORDER BY device_id, model"
    ):
        entry = {
            "name": row["model"],
            "version": row["version"],
            "delegate": row["delegate"],
            "degraded": bool(row["degraded"]),
        }
        if row["variant"] is not None:  # as in the status document: only a delivered release's
            entry["variant"] = row["variant"]
        result.setdefault(row["device_id"], []).append(entry)
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
            "SELECT t.device_id, t.battery_pct, t.max_temp_c, t.power_mode, t.power_w, t.energy_j "
            "FROM telemetry t "
            "JOIN (SELECT device_id, MAX(time) AS m FROM telemetry GROUP BY device_id) x "
            "ON t.device_id = x.device_id AND t.time = x.m"
        )
    }
    devices = []
    states: Counter[str] = Counter()
    versions: dict[str, Counter[str]] = {}
    for row in store.rows("SELECT * FROM devices ORDER BY device_id"):
        online = is_online(row, now)
        state = row["state"] if online else DeviceState.OFFLINE.value
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
                "power_w": sensors.get("power_w"),
                "energy_j": sensors.get("energy_j"),
            }
        )
    return {
        "time": now,
        "devices": devices,
        "counts": {"devices": len(devices), **states},
        "versions": {m: dict(c) for m, c in versions.items()},
        "alerts_firing": sum(alerts.values()),
        "saving": sum(1 for d in devices if d["power_mode"] == "saving"),
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
    for row in latest_drift(store, "device_id = ?", [device_id]):
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
    """Per model and version: devices per rollout state (latest event each), gate values.

    A version its devices run in several variants (a release with one model file per kind of
    hardware) also gets ``variants``: the same gate values for the devices of each, as the
    rollout gates judge them.
    """
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
    running: dict[tuple[str, str], dict[str, set[str]]] = {}
    for row in store.rows(
        "SELECT device_id, model, version, variant FROM device_models WHERE variant IS NOT NULL"
    ):
        variants = running.setdefault((row["model"], row["version"]), {})
        variants.setdefault(row["variant"], set()).add(row["device_id"])
    for name, entry in models.items():
        versions = {}
        for version, states in entry["versions"].items():
            info: dict[str, Any] = {
                "states": dict(states),
                "gates": version_health(store, name, version, now, window_s).as_dict(),
            }
            variants = running.get((name, version), {})
            if len(variants) > 1:
                info["variants"] = {
                    variant: version_health(
                        store, name, version, now, window_s, devices=devices
                    ).as_dict()
                    for variant, devices in sorted(variants.items())
                }
            versions[version] = info
        entry["versions"] = versions
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
    latest = latest_drift(store, "model = ? AND time >= ?", [model, since])
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
        "devices_in_alarm": sorted(r["device_id"] for r in latest if in_drift_alarm(r)),
        "features": features,
    }
