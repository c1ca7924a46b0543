"""Fleet-wide views for the dashboard: power and drift across every device.

Power: battery, power, energy per inference, and power-mode transitions with their reasons.
Drift: every model's devices with their latest window, alarms, severities and alarm events.

Like :mod:`edge_agent.fleet.monitor.queries`, each view is a function of the store and
``now`` that returns JSON-able data. Series are averaged in the database per time bucket and
per device (``bucket_s`` grows with the span, so a view never returns more than about
``MAX_BUCKETS`` points per line), then summed or averaged across devices here: the fleet's
power is the sum of each device's mean power in the bucket, its energy per inference the
mean of the devices'. Lines per device are capped (``MAX_LINES``), lowest battery or highest
drift first, so a large fleet still draws a readable chart.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from edge_agent.fleet.monitor.health import in_drift_alarm, latest_drift
from edge_agent.fleet.monitor.store import Store

__all__ = ["MAX_BUCKETS", "MAX_LINES", "bucket_seconds", "fleet_drift_overview", "fleet_power"]

MAX_BUCKETS = 240
"""Most points per line."""
MAX_LINES = 12
"""Most per-device lines per chart."""
MAX_EVENTS = 50


def bucket_seconds(span_s: float) -> float:
    """Width of one point for a span: at least 1 s, at most ``MAX_BUCKETS`` points. Pure."""
    return max(1.0, span_s / MAX_BUCKETS)


def _span(store: Store, table: str, now: float, since: float) -> float:
    """Seconds of data in ``table`` since ``since`` (a young fleet gets fine buckets)."""
    rows = store.rows(f"SELECT MIN(time) AS t FROM {table} WHERE time >= ?", [since])
    first = rows[0]["t"] if rows and rows[0]["t"] is not None else since
    return max(now - max(float(first), since), 1.0)


def _latest_telemetry(store: Store) -> dict[str, dict[str, Any]]:
    return {
        r["device_id"]: r
        for r in store.rows(
            "SELECT t.device_id, t.time, t.battery_pct, t.power_w, t.energy_j, t.power_mode, "
            "t.max_temp_c FROM telemetry t JOIN (SELECT device_id, MAX(time) AS m FROM telemetry "
            "GROUP BY device_id) x ON t.device_id = x.device_id AND t.time = x.m"
        )
    }


def _bucketed(store: Store, since: float, bucket: float) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT CAST(time / ? AS INTEGER) AS b, device_id, AVG(battery_pct) AS battery, "
        "AVG(power_w) AS power, AVG(energy_j) AS energy FROM telemetry WHERE time >= ? "
        "GROUP BY 1, 2 ORDER BY 1",
        [bucket, since],
    )


def fleet_power(store: Store, now: float, since: float) -> dict[str, Any]:
    """Battery, power and energy per inference across the fleet, and power-mode transitions."""
    latest = _latest_telemetry(store)
    last_switch = {
        r["device_id"]: r
        for r in store.rows(
            "SELECT e.device_id, e.time, e.state, e.reason FROM events e JOIN (SELECT device_id, "
            "MAX(time) AS t FROM events WHERE kind = 'power_policy' GROUP BY device_id) m "
            "ON e.device_id = m.device_id AND e.time = m.t WHERE e.kind = 'power_policy'"
        )
    }
    devices = []
    for device_id, row in sorted(latest.items()):
        switch = last_switch.get(device_id)
        devices.append(
            {
                "device_id": device_id,
                "supply": "battery" if row["battery_pct"] is not None else "mains",
                "time": row["time"],
                "battery_pct": row["battery_pct"],
                "power_w": row["power_w"],
                "energy_j": row["energy_j"],
                "power_mode": row["power_mode"],
                "max_temp_c": row["max_temp_c"],
                "last_switch": None
                if switch is None
                else {"time": switch["time"], "mode": switch["state"], "reason": switch["reason"]},
            }
        )
    bucket = bucket_seconds(_span(store, "telemetry", now, since))
    battery: dict[str, list[list[float]]] = defaultdict(list)
    power: dict[float, float] = defaultdict(float)
    energy: dict[float, list[float]] = defaultdict(list)
    for row in _bucketed(store, since, bucket):
        t = (int(row["b"]) + 0.5) * bucket
        if row["battery"] is not None:
            battery[row["device_id"]].append([t, round(float(row["battery"]), 2)])
        if row["power"] is not None:
            power[t] += float(row["power"])
        if row["energy"] is not None:
            energy[t].append(float(row["energy"]))
    lowest = sorted(battery, key=lambda d: (latest.get(d, {}).get("battery_pct") or 0.0, d))
    transitions = store.rows(
        "SELECT time, device_id, state, reason, detail FROM events WHERE kind = 'power_policy' "
        "AND time >= ? ORDER BY time DESC LIMIT ?",
        [since, MAX_EVENTS],
    )
    for row in transitions:
        detail = json.loads(row.pop("detail") or "{}")
        row["fps"] = detail.get("fps")
        row["model_variant"] = detail.get("model_variant")
    on_battery = [d for d in devices if d["supply"] == "battery"]
    powers = [d["power_w"] for d in devices if d["power_w"] is not None]
    energies = [d["energy_j"] for d in devices if d["energy_j"] is not None]
    return {
        "time": now,
        "since": since,
        "bucket_s": bucket,
        "totals": {
            "devices": len(devices),
            "battery": len(on_battery),
            "mains": len(devices) - len(on_battery),
            "saving": sum(1 for d in devices if d["power_mode"] == "saving"),
            "power_w": round(sum(powers), 3) if powers else None,
            "energy_j": sum(energies) / len(energies) if energies else None,
            "lowest_battery_pct": min(
                (d["battery_pct"] for d in on_battery), default=None, key=float
            ),
        },
        "devices": devices,
        "series": {
            "battery": [{"device_id": d, "points": battery[d]} for d in lowest[:MAX_LINES]],
            "power_w": [[t, round(v, 3)] for t, v in sorted(power.items())],
            "energy_j": [[t, sum(v) / len(v)] for t, v in sorted(energy.items())],
        },
        "transitions": transitions,
    }


def fleet_drift_overview(store: Store, now: float, since: float) -> dict[str, Any]:
    """Every model's drift across the fleet: devices and their latest window, alarm events.

    Per feature, the severity ratios of each device's latest window (mean and max); the merged
    window profile of one model is ``queries.fleet_drift`` (``/api/drift/<model>``).
    """
    models: dict[str, dict[str, Any]] = {}
    for row in latest_drift(store, "time >= ?", [since]):
        entry = models.setdefault(row["model"], {"devices": [], "features": {}})
        features = json.loads(row.pop("features") or "{}")
        row["in_alarm"] = in_drift_alarm(row)
        row["worst_feature"] = max(features, key=features.get) if features else None
        entry["devices"].append(row)
        for feature, ratio in features.items():
            entry["features"].setdefault(feature, []).append(float(ratio))
    bucket = bucket_seconds(_span(store, "drift", now, since))
    series: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for row in store.rows(
        "SELECT CAST(time / ? AS INTEGER) AS b, model, device_id, MAX(input_severity) AS s "
        "FROM drift WHERE time >= ? GROUP BY 1, 2, 3 ORDER BY 1",
        [bucket, since],
    ):
        if row["s"] is not None:
            t = (int(row["b"]) + 0.5) * bucket
            series[(row["model"], row["device_id"])].append([t, round(float(row["s"]), 3)])
    for name, entry in models.items():
        entry["devices"].sort(key=lambda r: (not r["in_alarm"], -(r["input_severity"] or 0.0)))
        entry["devices_in_alarm"] = [r["device_id"] for r in entry["devices"] if r["in_alarm"]]
        entry["features"] = sorted(
            (
                {"feature": f, "mean": sum(v) / len(v), "max": max(v), "devices": len(v)}
                for f, v in entry["features"].items()
            ),
            key=lambda f: -f["max"],
        )[:32]
        entry["series"] = [
            {"device_id": r["device_id"], "points": series.get((name, r["device_id"]), [])}
            for r in entry["devices"][:MAX_LINES]
        ]
    events = store.rows(
        "SELECT time, device_id, model, state, reason FROM events WHERE kind = 'drift_alarm' "
        "AND time >= ? ORDER BY time DESC LIMIT ?",
        [since, MAX_EVENTS],
    )
    return {
        "time": now,
        "since": since,
        "bucket_s": bucket,
        "models": dict(sorted(models.items())),
        "devices_in_alarm": sorted(
            {d for entry in models.values() for d in entry["devices_in_alarm"]}
        ),
        "events": events,
    }
