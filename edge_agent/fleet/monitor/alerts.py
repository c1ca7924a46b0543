"""Alert rules and their evaluation against the store.

Rules: drift alarm, latency SLO breach, battery low, overheating, device offline, rollout
failure, device limit reached (fleet-wide). Rules are pure functions from stored data to
*conditions*; the :class:`AlertEvaluator` fetches the data, turns conditions into firing /
resolved alerts in the store and hands each change to the delivery sinks
(:mod:`edge_agent.fleet.monitor.delivery`).

Several monitor instances may evaluate the same database: the alert row's unique key decides
which instance opened (or resolved) it, and only that one delivers, so a webhook sees each
change once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.fleet.monitor.health import STALE_S
from edge_agent.fleet.monitor.queries import firing_alerts
from edge_agent.fleet.monitor.store import Store
from edge_agent.wire.states import FAILED_STATES, DeviceState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertRules:
    """Thresholds (units in the names)."""

    latency_slo_ms: float = 250.0
    latency_window_s: float = 120.0
    """A device/model breaches when most reports of this window have p95 over the SLO."""
    latency_min_reports: int = 2
    battery_low_pct: float = 15.0
    overheat_c: float = 80.0
    offline_after_s: float = 300.0
    """Offline (last will, or silent for ``STALE_S``) for longer than this."""
    rollout_failure_hold_s: float = 3600.0
    """A rollout failure stays firing this long unless a later version becomes active."""
    max_alerts_per_device: int = 16
    """Firing alerts one device may hold; more conditions than this are counted, not opened."""


@dataclass(frozen=True)
class Condition:
    """Something that should be firing now."""

    key: str
    rule: str
    device_id: str | None
    subject: str | None
    severity: str
    message: str


def drift_conditions(latest: Iterable[dict[str, Any]]) -> list[Condition]:
    """Latest drift window per device and model with any signal in alarm. Pure."""
    out = []
    for row in latest:
        signals = [
            s for s in ("input", "prediction", "quality") if row.get(f"{s}_alarm") == "alarm"
        ]
        if signals:
            device, model = row["device_id"], row["model"]
            out.append(
                Condition(
                    f"drift_alarm:{device}:{model}",
                    "drift_alarm",
                    device,
                    model,
                    "warning",
                    f"drift alarm on {device} for model {model}: {', '.join(signals)} drifting",
                )
            )
    return out


def latency_conditions(rows: Iterable[dict[str, Any]], rules: AlertRules) -> list[Condition]:
    """Rows of (device_id, model, reports, breaching, worst_p95). Pure."""
    out = []
    for row in rows:
        reports, breaching = int(row["reports"]), int(row["breaching"])
        if reports >= rules.latency_min_reports and breaching * 2 > reports:
            device, model = row["device_id"], row["model"]
            out.append(
                Condition(
                    f"latency_slo:{device}:{model}",
                    "latency_slo",
                    device,
                    model,
                    "warning",
                    f"latency SLO breach on {device} for model {model}: p95 over "
                    f"{rules.latency_slo_ms:g} ms in {breaching} of {reports} reports "
                    f"(worst {float(row['worst_p95']):.1f} ms)",
                )
            )
    return out


def sensor_conditions(latest: Iterable[dict[str, Any]], rules: AlertRules) -> list[Condition]:
    """Latest telemetry per device: battery low and overheating. Pure."""
    out = []
    for row in latest:
        device = row["device_id"]
        battery, temp = row.get("battery_pct"), row.get("max_temp_c")
        if battery is not None and float(battery) < rules.battery_low_pct:
            out.append(
                Condition(
                    f"battery_low:{device}",
                    "battery_low",
                    device,
                    None,
                    "warning",
                    f"battery low on {device}: {float(battery):.0f}% "
                    f"(< {rules.battery_low_pct:g}%)",
                )
            )
        if temp is not None and float(temp) > rules.overheat_c:
            out.append(
                Condition(
                    f"overheating:{device}",
                    "overheating",
                    device,
                    None,
                    "critical",
                    f"overheating on {device}: {float(temp):.1f} °C (> {rules.overheat_c:g} °C)",
                )
            )
    return out


def offline_conditions(
    devices: Iterable[dict[str, Any]], now: float, rules: AlertRules
) -> list[Condition]:
    """Devices offline (last will) or silent for longer than ``offline_after_s``. Pure."""
    out = []
    for row in devices:
        device = row["device_id"]
        if row["state"] == DeviceState.OFFLINE:
            since = float(row["state_since"])
        elif now - float(row["last_seen"]) > STALE_S:
            since = float(row["last_seen"])
        else:
            continue
        if now - since > rules.offline_after_s:
            out.append(
                Condition(
                    f"device_offline:{device}",
                    "device_offline",
                    device,
                    None,
                    "critical",
                    f"device {device} offline for {(now - since) / 60:.0f} min",
                )
            )
    return out


def rollout_conditions(
    latest: Iterable[dict[str, Any]], now: float, rules: AlertRules
) -> list[Condition]:
    """Latest rollout event per device and model, when it is a failure still held. Pure."""
    out = []
    for row in latest:
        if row["state"] in FAILED_STATES and now - float(row["time"]) <= (
            rules.rollout_failure_hold_s
        ):
            device, model = row["device_id"], row["model"]
            out.append(
                Condition(
                    f"rollout_failure:{device}:{model}",
                    "rollout_failure",
                    device,
                    model,
                    "critical",
                    f"rollout of {model} v{row['version']} {row['state']} on {device}: "
                    f"{row.get('reason') or 'no reason given'}",
                )
            )
    return out


def device_limit_conditions(devices: int, limit: int | None) -> list[Condition]:
    """One fleet-wide alert while the store holds its ``max_devices``. Pure.

    Messages from further device ids are quarantined (``device_limit`` dead letters) rather
    than stored, so this is the one alert a flood of invented ids raises, not one per id.
    """
    if limit is None or devices < limit:
        return []
    return [
        Condition(
            "device_limit",
            "device_limit",
            None,
            None,
            "critical",
            f"device limit reached: the monitor holds {devices} devices (max_devices {limit}); "
            "messages from new device ids are quarantined, not stored",
        )
    ]


_SEVERITY_ORDER = {"critical": 0, "warning": 1}


def cap_conditions(
    conditions: Sequence[Condition], firing: set[str], cap: int
) -> tuple[list[Condition], int]:
    """(conditions kept, how many were left out): at most ``cap`` per device. Pure.

    Per device, conditions already firing are kept first (so the cap never resolves an alert
    that still holds), then critical before warning, then by key. Fleet-wide conditions (no
    device) are not capped.
    """
    per_device: dict[str, list[Condition]] = {}
    kept: list[Condition] = []
    for condition in conditions:
        if condition.device_id is None:
            kept.append(condition)
        else:
            per_device.setdefault(condition.device_id, []).append(condition)
    left_out = 0
    for items in per_device.values():
        items.sort(key=lambda c: (c.key not in firing, _SEVERITY_ORDER.get(c.severity, 2), c.key))
        kept.extend(items[:cap])
        left_out += max(len(items) - cap, 0)
    return kept, left_out


def plan(firing: set[str], conditions: Sequence[Condition]) -> tuple[list[Condition], list[str]]:
    """(conditions to open, keys to resolve). Pure."""
    wanted = {c.key for c in conditions}
    return [c for c in conditions if c.key not in firing], sorted(firing - wanted)


def collect_conditions(store: Store, rules: AlertRules, now: float) -> list[Condition]:
    """Fetch what the rules need and apply them."""
    drift = store.rows(
        "SELECT d.device_id, d.model, d.input_alarm, d.prediction_alarm, d.quality_alarm "
        "FROM drift d JOIN (SELECT device_id, model, MAX(time) AS t FROM drift "
        "GROUP BY device_id, model) m ON d.device_id = m.device_id AND d.model = m.model "
        "AND d.time = m.t"
    )
    latency = store.rows(
        "SELECT device_id, model, COUNT(*) AS reports, "
        "SUM(CASE WHEN p95 > ? THEN 1 ELSE 0 END) AS breaching, MAX(p95) AS worst_p95 "
        "FROM model_load WHERE time >= ? AND p95 IS NOT NULL GROUP BY device_id, model",
        [rules.latency_slo_ms, now - rules.latency_window_s],
    )
    sensors = store.rows(
        "SELECT t.device_id, t.battery_pct, t.max_temp_c FROM telemetry t JOIN "
        "(SELECT device_id, MAX(time) AS m FROM telemetry GROUP BY device_id) x "
        "ON t.device_id = x.device_id AND t.time = x.m"
    )
    devices = store.rows("SELECT device_id, state, state_since, last_seen FROM devices")
    rollout = store.rows(
        "SELECT e.device_id, e.model, e.version, e.state, e.reason, e.time FROM events e "
        "JOIN (SELECT device_id, model, MAX(time) AS t FROM events WHERE kind = 'rollout' "
        "GROUP BY device_id, model) m ON e.device_id = m.device_id AND e.model = m.model "
        "AND e.time = m.t WHERE e.kind = 'rollout'"
    )
    known = int(store.rows("SELECT COUNT(*) AS n FROM devices")[0]["n"])
    return [
        *device_limit_conditions(known, store.max_devices),
        *drift_conditions(drift),
        *latency_conditions(latency, rules),
        *sensor_conditions(sensors, rules),
        *offline_conditions(devices, now, rules),
        *rollout_conditions(rollout, now, rules),
    ]


Notify = Callable[[dict[str, Any]], None]


class AlertEvaluator:
    """Runs the rules against the store and notifies each change (firing / resolved)."""

    def __init__(self, store: Store, rules: AlertRules, notify: Sequence[Notify]) -> None:
        self.store = store
        self.rules = rules
        self.notify = list(notify)
        self.evaluations = 0
        self.capped = 0
        """Conditions left out by the per-device cap in the last evaluation."""

    def evaluate(self, now: float | None = None) -> list[dict[str, Any]]:
        """One pass; returns the changes it made (as delivered)."""
        now = time.time() if now is None else now
        conditions = collect_conditions(self.store, self.rules, now)
        firing = {a["akey"]: a for a in firing_alerts(self.store)}
        conditions, self.capped = cap_conditions(
            conditions, set(firing), self.rules.max_alerts_per_device
        )
        if self.capped:
            log.warning("%d alert conditions over the per-device cap not opened", self.capped)
        to_open, to_resolve = plan(set(firing), conditions)
        changes = []
        for c in to_open:
            if self.store.open_alert(
                c.key, c.rule, c.device_id, c.subject, c.severity, c.message, now
            ):
                changes.append(
                    {
                        "state": "firing",
                        "key": c.key,
                        "rule": c.rule,
                        "device_id": c.device_id,
                        "subject": c.subject,
                        "severity": c.severity,
                        "message": c.message,
                        "time": now,
                    }
                )
        for key in to_resolve:
            if self.store.resolve_alert(key, now):
                alert = firing[key]
                changes.append(
                    {
                        "state": "resolved",
                        "key": key,
                        "rule": alert["rule"],
                        "device_id": alert["device_id"],
                        "subject": alert["subject"],
                        "severity": alert["severity"],
                        "message": f"resolved: {alert['message']}",
                        "time": now,
                    }
                )
        self.evaluations += 1
        for change in changes:
            log.warning("alert %s: %s", change["state"], change["message"])
            for sink in self.notify:
                try:
                    sink(change)
                except Exception:
                    log.exception("alert sink failed")
        return changes
