"""The agent's reporting: latency, sensors, power policy and drift into the outbox, to MQTT.

Hot path: each served model gets an observer that records latency (a DDSketch insert) and
offers the sample to the model's drift monitor (a coin flip, usually a decrement). Everything
else (profiling windows, reading sysfs, SQLite commits, publishing) runs on other threads or in
the periodic ``report``. The outbox is the record of what is still to send: telemetry survives
a broker outage and a kill -9 there, not in paho's memory. Every document queued is the wire
contract's typed class (:mod:`edge_agent.wire`), encoded once here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.config import TelemetrySettings
from edge_agent.errors import EdgeAgentError
from edge_agent.serving.served import InferenceResult, ServedModel
from edge_agent.telemetry.latency import LatencyRecorder, energy_per_inference_j
from edge_agent.telemetry.outbox import Outbox, Priority
from edge_agent.telemetry.power_policy import PowerDecision, PowerState, decide
from edge_agent.telemetry.publisher import OutboxPublisher
from edge_agent.telemetry.sensors import SensorReader, SystemSnapshot
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire import Document
from edge_agent.wire.drift import DriftAlarmEvent, DriftReport
from edge_agent.wire.status import Status
from edge_agent.wire.telemetry import Load, PowerPolicyEvent, System, TelemetryReport

if TYPE_CHECKING:
    from edge_agent.telemetry.drift import DriftMonitor
    from edge_agent.telemetry.profile import Profile

log = logging.getLogger(__name__)


class AgentTelemetry:
    """Collects and queues everything the agent reports about itself."""

    def __init__(
        self,
        device_id: str,
        settings: TelemetrySettings,
        sensors: SensorReader,
        outbox_path: Path,
        mqtt: MqttClient | None,
        *,
        on_drift_transition: Callable[[str, bool], None] = lambda model, raised: None,
        on_power_decision: Callable[[PowerDecision], None] = lambda decision: None,
    ) -> None:
        self.device_id = device_id
        self._on_drift_transition = on_drift_transition
        self._on_power_decision = on_power_decision
        self.settings = settings
        self.sensors = sensors
        self.latency = LatencyRecorder(relative_accuracy=settings.latency.relative_accuracy)
        self.outbox = Outbox(outbox_path, settings.outbox.max_bytes, settings.outbox.synchronous)
        self.publisher: OutboxPublisher | None = None
        if mqtt is not None:
            self.publisher = OutboxPublisher(
                self.outbox,
                device_id,
                mqtt,
                inflight=settings.outbox.inflight,
                batch=settings.outbox.batch,
            )
            self.publisher.start()
        self.drift: dict[str, DriftMonitor] = {}
        self.power = PowerState()
        self._decision: PowerDecision | None = None
        self._energy_per_inference_j: float | None = None

    @property
    def last_snapshot(self) -> SystemSnapshot | None:
        """The device's latest sensor reading (shared with the policy and upload conditions)."""
        return self.sensors.last

    @property
    def energy_per_inference_j(self) -> float | None:
        """Energy per inference over the last report's period (None without a power reading)."""
        return self._energy_per_inference_j

    def attach(self, served: ServedModel, reference: Profile | None) -> None:
        """Record latency for ``served``, and its drift when a reference profile exists."""
        name = served.name
        record = self.latency.record
        drift = self.drift
        self.set_reference(name, reference)

        def on_result(inputs: Mapping[str, np.ndarray], result: InferenceResult) -> None:
            record(name, result.delegate, result.latency_s)
            monitor = drift.get(name)  # the active version's reference, swapped with it
            if monitor is not None:
                first_output = next(iter(result.outputs.values()), None)
                monitor.observe(next(iter(inputs.values())), first_output)

        def on_error(_version: str, _error: BaseException) -> None:
            record(name, served.active.backend.delegate.name, 0.0, ok=False)

        served.add_observer(on_result)
        served.add_error_observer(on_error)

    def set_reference(self, name: str, reference: Profile | None) -> None:
        """Judge ``name``'s drift against ``reference`` from now on (None: no detection).

        Called when a model is first served and whenever another version becomes active
        (a hot swap, a rollback): each version is judged against the profile it came with.
        """
        old = self.drift.pop(name, None)
        if old is not None:
            old.stop()
        if reference is not None and self.settings.drift.enabled:
            from edge_agent.telemetry.drift import DriftMonitor  # only with a reference profile

            monitor = DriftMonitor(name, reference, self.settings.drift, emit=self._drift_report)
            monitor.start()
            self.drift[name] = monitor

    def detach(self, name: str) -> None:
        """Stop the drift monitor of a model no longer served."""
        self.set_reference(name, None)

    def report(self, status: Status) -> TelemetryReport:
        """Queue one telemetry report (latency, load, sensors, power) and apply the policy."""
        decision = self.apply_power_policy()
        snapshot = self.sensors.read()
        load = self.latency.collect()
        sensors = snapshot.as_dict()
        seconds = float(load.get("period_s") or 0.0)
        total = sum(int(m.get("count", 0)) for m in load.get("models", []))
        self._energy_per_inference_j = energy_per_inference_j(snapshot.power_w, total, seconds)
        report = TelemetryReport(
            device_id=self.device_id,
            state=status.state.value,
            models=status.models,
            load=Load.model_validate(load),
            system=System.model_validate(sensors),
            energy_per_inference_j=self._energy_per_inference_j,
            power_mode=decision.state.mode,
            outbox=self.outbox.stats(),
        )
        self._enqueue(DeviceChannel.TELEMETRY, Priority.TELEMETRY, report)
        return report

    def apply_power_policy(self) -> PowerDecision:
        """Decide on the shared sensor reading, report a change, and hand the decision on.

        Runs with every report and, when the policy is on, every few seconds in between (a
        battery or a temperature crossing its threshold should not wait a whole report period).
        """
        snapshot = self.sensors.read()
        decision = decide(
            self.power,
            snapshot.battery_pct,
            snapshot.battery_charging,
            snapshot.max_temp_c,
            self.settings.power,
        )
        self.power, self._decision = decision.state, decision
        if decision.changed:
            log.info(
                "power policy: %s (%s)", decision.state.mode, "; ".join(decision.reasons) or "-"
            )
            event = PowerPolicyEvent(event="power_policy", **decision.report())
            self._enqueue(DeviceChannel.TELEMETRY, Priority.ALARM, event)
        self._on_power_decision(decision)
        return decision

    def light_variant_event(
        self, model: str, outcome: str, variant: str | None, reasons: list[str]
    ) -> None:
        """Queue what the light variant's swap did for ``model`` (a ``power_policy`` event)."""
        decision = self._decision
        log.info("power policy: %s light variant %s (%s)", model, outcome, "; ".join(reasons))
        event = PowerPolicyEvent(
            event="power_policy",
            model=model,
            mode=self.power.mode,
            battery_saving=self.power.battery_saving,
            thermal_throttling=self.power.thermal_throttling,
            fps=decision.fps if decision is not None else None,
            model_variant=variant,
            variant_swap=outcome,
            reasons=reasons,
        )
        self._enqueue(DeviceChannel.TELEMETRY, Priority.ALARM, event)

    def _drift_report(self, raw: dict[str, Any]) -> None:
        report = DriftReport.model_validate(raw)
        self._enqueue(DeviceChannel.DRIFT, Priority.DRIFT, report)
        for transition in report.transitions:
            event = DriftAlarmEvent.of(report.model, transition)
            self._enqueue(DeviceChannel.DRIFT, Priority.ALARM, event)
            self._on_drift_transition(report.model, transition.to == "alarm")

    def _enqueue(self, channel: DeviceChannel, priority: Priority, document: Document) -> None:
        try:
            self.outbox.enqueue(channel, priority, document.encode())
        except EdgeAgentError as exc:  # a full disk must not stop inference
            log.error("telemetry record dropped: %s", exc)

    def close(self) -> None:
        """Stop the drift workers and the publisher; the outbox keeps what was not sent."""
        for name in list(self.drift):
            self.detach(name)
        if self.publisher is not None:
            self.publisher.stop()
        self.outbox.close()
