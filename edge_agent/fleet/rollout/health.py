"""Where the controller's gate values come from: the central monitor's database.

:class:`~edge_agent.fleet.rollout.gates.HealthSource` is the one method the controller needs
(declared beside the gates, so the controller loads without the monitor package);
:class:`MonitorHealth` answers it with the monitor library's queries
(``queries.fleet_overview`` for who runs which release and who is online,
``health.version_health`` for error rate, merged-sketch p95, shadow agreement and drift of
the new and the previous release, ``queries.rollouts`` for the devices' latest install state).
Every value is limited to the rollout's devices: the new release's to the cohort (the opened
waves), the previous release's latency baseline to the group; a device outside the rollout
that reports the same model and version never counts.

Per variant: the status documents say which variant (model file) of a release each device
runs. When the cohort's devices on the release run more than one, the same values are read for
the devices of each variant (the latency baseline from the group's devices on that variant of
the previous release), so :func:`~edge_agent.fleet.rollout.gates.evaluate_gates` judges every
variant on its own. Tests and the benchmark pass the same monitor the dashboard uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from edge_agent.fleet.monitor import Monitor, queries
from edge_agent.fleet.monitor.health import Health, version_health
from edge_agent.fleet.monitor.store import Store
from edge_agent.fleet.rollout.gates import HealthSource, WaveReading
from edge_agent.wire.states import FAILED_STATES

UNKNOWN_VARIANT = "unknown"
"""The variant of a device whose status names none (a model that did not come from the
registry, or an agent older than variants)."""


class MonitorHealth(HealthSource):
    """A :class:`HealthSource` over the monitor's store.

    Pass a started :class:`Monitor` (it ingests and the controller reads the same database), or
    use :meth:`from_store` to read the database of a monitor that runs elsewhere.
    """

    def __init__(self, monitor: Monitor | None = None, *, store: Store | None = None) -> None:
        if (monitor is None) == (store is None):
            raise ValueError("pass a monitor or a store")
        self._monitor = monitor
        self._open_store = store
        self._clock: Callable[[], float] = monitor.clock if monitor is not None else time.time

    @classmethod
    def from_store(cls, store: Store) -> MonitorHealth:
        """Read an open monitor database directly (``open_store(url)``), without ingesting."""
        return cls(store=store)

    def _store(self) -> Store:
        return self._monitor.store if self._monitor is not None else self._open_store  # type: ignore[return-value]

    def reading(
        self,
        model: str,
        release: int,
        previous: int | None,
        cohort: Sequence[str],
        window_s: float,
        group: Sequence[str] = (),
    ) -> WaveReading:
        """See :class:`HealthSource`: every value is read for the cohort's devices only."""
        members, group_members = set(cohort), set(group) or set(cohort)
        version = str(release)
        on_release = online = 0
        store, now = self._store(), self._clock()
        by_variant: dict[str, set[str]] = {}
        """Devices of the cohort on the release, by the variant they run."""
        before: dict[str, set[str]] = {}
        """Devices of the group still on the previous release, by variant (the baselines)."""
        for device in queries.fleet_overview(store, now)["devices"]:
            device_id = device["device_id"]
            entry = next((m for m in device["models"] if m["name"] == model), None)
            variant = (entry or {}).get("variant") or UNKNOWN_VARIANT
            if (
                entry is not None
                and device_id in group_members
                and entry["version"] == str(previous)
            ):
                before.setdefault(variant, set()).add(device_id)
            if device_id not in members:
                continue
            online += bool(device["online"])
            if entry is not None and entry["version"] == version:
                on_release += 1
                by_variant.setdefault(variant, set()).add(device_id)
        failed = 0
        per_model = queries.rollouts(store, now, window_s)
        for row in per_model["models"].get(model, {}).get("devices", []):
            if (
                row["device_id"] in members
                and row["version"] == version
                and row["state"] in FAILED_STATES
                and float(row["time"]) >= now - window_s  # not an earlier rollout's rollback
            ):
                failed += 1
        health = version_health(store, model, version, now, window_s, devices=members)
        baseline = (
            version_health(
                store, model, str(previous), now, window_s, devices=set(group) or members
            ).latency_p95_ms
            if previous is not None
            else None
        )
        return _reading(
            health,
            baseline,
            cohort=len(members),
            on_release=on_release,
            online=online,
            failed=failed,
            variants=tuple(
                (
                    variant,
                    self._variant_reading(
                        model, version, previous, devices, before.get(variant, set()), window_s
                    ),
                )
                for variant, devices in sorted(by_variant.items())
            )
            if len(by_variant) > 1
            else (),
        )

    def _variant_reading(
        self,
        model: str,
        version: str,
        previous: int | None,
        devices: set[str],
        baseline_devices: set[str],
        window_s: float,
    ) -> WaveReading:
        """The gate values of the cohort's devices on one variant (``devices``).

        The latency baseline comes from ``baseline_devices``, the group's devices on that
        variant of ``previous``.
        """
        store, now = self._store(), self._clock()
        health = version_health(store, model, version, now, window_s, devices=devices)
        baseline = (
            version_health(
                store, model, str(previous), now, window_s, devices=baseline_devices
            ).latency_p95_ms
            if previous is not None and baseline_devices
            else None
        )
        return _reading(
            health, baseline, cohort=len(devices), on_release=len(devices), online=health.online
        )


def _reading(
    health: Health,
    baseline_p95_ms: float | None,
    *,
    cohort: int,
    on_release: int,
    online: int,
    failed: int = 0,
    variants: tuple[tuple[str, WaveReading], ...] = (),
) -> WaveReading:
    """A wave's gate values: the monitor's health of the devices read, with their counts."""
    return WaveReading(
        cohort=cohort,
        on_release=on_release,
        online=online,
        failed=failed,
        inferences=health.inferences,
        errors=health.errors,
        error_rate=health.error_rate,
        latency_p95_ms=health.latency_p95_ms,
        baseline_p95_ms=baseline_p95_ms,
        shadow_agreement=health.shadow_agreement,
        shadow_compared=health.shadow_compared,
        drift_alarm_devices=tuple(health.drift_alarm_devices),
        variants=variants,
    )
