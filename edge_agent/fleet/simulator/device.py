"""One simulated device: its model slots, its synthetic load and the messages it publishes.

The state is what a real device's ``ModelStore`` holds for one model (active, previous,
rejected releases), kept in memory; decisions come from the same pure rollout functions the
agent uses (:func:`edge_agent.delivery.following.plan_for_device`). Messages are built in
the wire contract's documents (:mod:`edge_agent.wire`), as the agent sends them: the retained
status, telemetry in outbox envelopes (:class:`edge_agent.telemetry.outbox.Record`) carrying a
real DDSketch from :class:`edge_agent.telemetry.latency.LatencyRecorder`, update transitions
and the swap controller's events.

Power and drift are the agent's own decisions on simulated readings: :meth:`SimDevice.advance`
steps the device's supply (``power.py``) and runs the real power policy
(:func:`edge_agent.telemetry.power_policy.decide`), reporting each switch as the agent does
(a ``power_policy`` event at alarm priority); :meth:`SimDevice.drift` scores a window of
synthetic frames with the real drift detector (``drift.py``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from edge_agent import __version__
from edge_agent.config import PowerPolicySettings
from edge_agent.fleet.simulator.drift import DriftEpisodes, DriftState, drift_window
from edge_agent.fleet.simulator.faults import (
    FaultSettings,
    device_is_slow,
    shadow_evidence,
    synthetic_inference,
)
from edge_agent.fleet.simulator.power import PowerSupply, SupplySettings, step
from edge_agent.telemetry.latency import LatencyRecorder, energy_per_inference_j
from edge_agent.telemetry.outbox import Priority, Record
from edge_agent.telemetry.power_policy import PowerState, decide
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire import Document
from edge_agent.wire.drift import DriftAlarmEvent, DriftReport
from edge_agent.wire.states import DeviceState, SwapState, UpdateState
from edge_agent.wire.status import ModelStatus, Status
from edge_agent.wire.telemetry import Load, PowerPolicyEvent, System, TelemetryReport
from edge_agent.wire.transitions import SwapEvent, Transition

DELEGATE = "cpu"
DEVICE_CLASS = "simulated"
UNPACED_FPS = 10.0
"""Frames per second a device runs at when the power policy sets no rate."""


@dataclass
class SimDevice:
    """A light device: one model, slots in memory, synthetic inference."""

    device_id: str
    model: str
    faults: FaultSettings
    seed: int
    active: int | None = None
    previous: int | None = None
    rejected: dict[int, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    supply: PowerSupply = field(default_factory=lambda: PowerSupply("mains"))
    policy: PowerPolicySettings = field(default_factory=PowerPolicySettings)
    drift_state: DriftState | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.device_id}")
        self.slow = device_is_slow(self.rng, self.faults)
        self.latency = LatencyRecorder()
        self.lock = threading.Lock()
        self._outbox_id = uuid.uuid4().hex[:8]
        self._seq = 0
        self.installs = 0
        self.power = PowerState()
        self.fps: float = self.policy.normal_fps or UNPACED_FPS
        self.energy_j: float | None = None
        self.power_switches = 0

    # -- inference -------------------------------------------------------------------------

    def infer(self, count: int) -> None:
        """Run ``count`` synthetic inferences on the active release (none when nothing runs)."""
        with self.lock:
            release = self.active
        if release is None:
            return
        for _ in range(count):
            result = synthetic_inference(self.rng, self.faults, release, self.slow)
            self.latency.record(self.model, DELEGATE, result.latency_s, ok=result.ok)

    # -- slots -----------------------------------------------------------------------------

    def activate(self, release: int) -> None:
        """The release passed its (simulated) shadow check: serve it, keep the old one."""
        with self.lock:
            if self.active != release:
                self.previous = self.active
                self.active = release
            self.installs += 1

    def roll_back(self, to_release: int) -> None:
        """A signed rollout rollback: return to ``to_release``, rejecting nothing.

        Like the agent: the release left stays installable for a later rollout, since the
        fleet's gates failed, not this device.
        """
        with self.lock:
            self.active = to_release
            self.previous = None

    def reject(self, release: int, reason: str) -> None:
        """A failed install: never tried again."""
        with self.lock:
            self.rejected[release] = reason

    # -- messages --------------------------------------------------------------------------

    def _models(self) -> list[ModelStatus]:
        with self.lock:
            active = self.active
        if active is None:
            return []
        return [ModelStatus(name=self.model, version=str(active), delegate=DELEGATE)]

    def status(self, state: DeviceState = DeviceState.ONLINE, now: float | None = None) -> bytes:
        """The retained status document (as ``Agent.status`` builds it)."""
        now = time.time() if now is None else now
        return Status(
            device_id=self.device_id,
            state=state,
            agent_version=__version__,
            device_class=DEVICE_CLASS,
            models=self._models(),
            api=None,
            uptime_s=round(now - self.started_at, 1),
            pipelines=[],
            time=now,
        ).encode()

    def offline(self) -> bytes:
        """The last will (no ``time``: the monitor stamps it on receipt)."""
        return Status.last_will(self.device_id).encode()

    def telemetry(self, now: float | None = None) -> bytes:
        """One telemetry report in an outbox envelope with a fresh record id."""
        reading = self.supply.last
        report = TelemetryReport(
            device_id=self.device_id,
            state=DeviceState.ONLINE.value,
            models=self._models(),
            load=Load.model_validate(self.latency.collect()),
            system=System(
                cpu_usage_pct=round(20 + 30 * self.rng.random(), 1),
                memory_used_pct=round(40 + 10 * self.rng.random(), 1),
                max_temp_c=round(45 + 10 * self.rng.random(), 1)
                if reading is None
                else reading.temp_c,
                battery_pct=None if reading is None else reading.battery_pct,
                power_w=None if reading is None else reading.power_w,
            ),
            energy_per_inference_j=self.energy_j,
            power_mode=self.power.mode,
            outbox={"records": 0, "dropped": {}},
        )
        return self._envelope(DeviceChannel.TELEMETRY, Priority.TELEMETRY, report, now)

    def _envelope(
        self, channel: DeviceChannel, priority: Priority, document: Document, now: float | None
    ) -> bytes:
        """``document`` framed as the agent's outbox sends it, with a fresh record id."""
        self._seq += 1
        record = Record(
            seq=self._seq,
            record_id=f"{self._outbox_id}-{self._seq}",
            priority=priority,
            channel=channel,
            created=time.time() if now is None else now,
            payload=document.encode(),
        )
        return record.envelope()

    # -- power -----------------------------------------------------------------------------

    def inference_share(self) -> float:
        """Share of the normal frame rate the power policy allows now (1.0 when unpaced)."""
        return min(1.0, self.fps / (self.policy.normal_fps or UNPACED_FPS))

    def advance(
        self, sim_time: float, dt_s: float, supply: SupplySettings, now: float | None = None
    ) -> list[bytes]:
        """Step the supply by ``dt_s`` simulated seconds and run the power policy on it.

        Returns the telemetry envelopes to send: a ``power_policy`` event when the mode
        switched (reasons included), as ``AgentTelemetry.apply_power_policy`` queues it.
        """
        fps = self.fps
        self.supply = step(self.supply, sim_time, dt_s, fps, supply, self.rng)
        reading = self.supply.last
        assert reading is not None
        inferences = round(fps * dt_s)
        self.energy_j = energy_per_inference_j(reading.power_w, inferences, dt_s)
        decision = decide(
            self.power, reading.battery_pct, reading.charging, reading.temp_c, self.policy
        )
        self.power, self.fps = decision.state, decision.fps or UNPACED_FPS
        if not decision.changed:
            return []
        self.power_switches += 1
        event = PowerPolicyEvent(event="power_policy", **decision.report())
        return [self._envelope(DeviceChannel.TELEMETRY, Priority.ALARM, event, now)]

    # -- drift -----------------------------------------------------------------------------

    def drift(
        self, sim_time: float, episodes: DriftEpisodes, now: float | None = None
    ) -> list[bytes]:
        """One drift window's report and its alarm transitions, as drift envelopes."""
        if self.drift_state is None or self.active is None:
            return []
        report = DriftReport.model_validate(
            drift_window(self.drift_state, self.model, sim_time, episodes)
        )
        out = [self._envelope(DeviceChannel.DRIFT, Priority.DRIFT, report, now)]
        for transition in report.transitions:
            event = DriftAlarmEvent.of(report.model, transition)
            out.append(self._envelope(DeviceChannel.DRIFT, Priority.ALARM, event, now))
        return out

    def transition(self, release: int | None, state: UpdateState, reason: str) -> bytes:
        """An update state transition (``edge_agent.delivery.update.Transition``'s payload)."""
        return Transition(
            device=self.device_id,
            model=self.model,
            version=release,
            state=state,
            reason=reason,
            timestamp=time.time(),
        ).encode()

    def swap_event(self, release: int, state: SwapState, reason: str) -> bytes:
        """The swap controller's event, with shadow evidence (what agreement gates read)."""
        return SwapEvent(
            model=self.model,
            version=str(release),
            state=state,
            reason=reason,
            time=time.time(),
            evidence=shadow_evidence(self.rng, self.faults, release),
        ).encode()
