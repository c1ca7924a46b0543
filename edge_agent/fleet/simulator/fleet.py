"""N simulated agents in one process: real MQTT, real TUF, synthetic inference and telemetry.

What is real: every device has an MQTT identity on the broker (its own connection with its own
last will, or ``devices_per_connection`` ids multiplexed on one connection for large fleets;
with ``device_broker`` each connection logs in with its device's own credential, as on a
secured site where the ACL confines a user to its device's topics),
publishes the retained status, outbox-enveloped telemetry with DDSketch latency, and rollout
transitions on its own topics, in the formats the monitor ingests. Every trust state
(:class:`TrustGroup`) is a real TUF client: refresh through the real registry over MQTT,
rollout document fetched and verified, model downloaded and verified. What is shared: the
devices of one trust group use its verified metadata and downloaded file (``independent``
devices have a trust state of their own; the rest share one per ``trust_group_size``).
What is synthetic: inference (latency drawn from a lognormal, errors by fault rate), the
model slots (in memory, decided by the same pure rollout functions as the agent), the power
supply (a solar-charged battery or mains, ``power.py``) and the camera frames drift is judged
on (``drift.py``); the power policy and the drift detector that judge them are the agent's.

Simulated time: ``time_scale`` simulated seconds pass per real second (from ``start_hour``
of a day), so a battery fleet goes through night and dawn in minutes. Messages carry real
time; only the physics (charge, sun, temperature, drift episodes) runs on simulated time.

Threads: the paho network thread per connection; one reporter (telemetry every
``report_interval_s``); one updater that, on each registry notification (and every
``check_interval_s``), refreshes all trust groups on a small pool and applies the plans.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import BrokerSettings, FetchSettings, PowerPolicySettings
from edge_agent.delivery.following import DevicePlan, plan_for_device
from edge_agent.errors import ConfigError, EdgeAgentError, TransportError
from edge_agent.fleet.simulator.device import SimDevice
from edge_agent.fleet.simulator.drift import DriftEpisodes, new_drift_state, synthetic_reference
from edge_agent.fleet.simulator.faults import FaultSettings, install_fails
from edge_agent.fleet.simulator.power import DAY_S, SupplySettings, new_supply, spread
from edge_agent.fleet.simulator.trust import TrustCounters, TrustGroup, Verified
from edge_agent.transport import topics
from edge_agent.transport.client import LastWill, Message, MqttClient, wait_acknowledged
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.states import SwapState, UpdateState

log = logging.getLogger(__name__)


@dataclass
class SimulatorSettings:
    """Shape of the simulated fleet (units in the names)."""

    devices: int = 50
    model: str = "digits"
    group: str = "lab"
    prefix: str = "sim"
    initial_release: int | None = None
    """Release every device starts with active (None: none; they install per the rollout)."""
    devices_per_connection: int = 1
    """>1 multiplexes device ids on one MQTT connection (no per-device last will then)."""
    independent: int | None = None
    """Devices with a trust state of their own (None: all of them)."""
    trust_group_size: int = 50
    """Devices sharing one trust state, among the non-independent ones."""
    report_interval_s: float = 1.0
    inferences_per_report: int = 20
    check_interval_s: float = 30.0
    update_workers: int = 4
    fetch: FetchSettings = field(
        default_factory=lambda: FetchSettings(chunk_timeout_s=2.0, backoff_base_s=0.1)
    )
    faults: FaultSettings = field(default_factory=FaultSettings)
    seed: int = 0
    client_id_prefix: str = "edge-agent-sim"
    supply: SupplySettings = field(default_factory=SupplySettings)
    """Battery (solar) or mains per device; see ``power.py``."""
    power_policy: PowerPolicySettings = field(
        default_factory=lambda: PowerPolicySettings(enabled=True, normal_fps=10.0, reduced_fps=2.0)
    )
    """The agent's power policy settings, applied by every simulated device."""
    drift: DriftEpisodes = field(default_factory=DriftEpisodes)
    time_scale: float = 1.0
    """Simulated seconds per real second (physics only: charge, sun, drift episodes)."""
    start_hour: float | None = None
    """Hour of the simulated day at start (None: the real UTC time of day)."""

    def device_ids(self) -> list[str]:
        """The simulated devices' ids (and so, on a secured site, their broker users)."""
        return [f"{self.prefix}-{i:04d}" for i in range(self.devices)]

    def __post_init__(self) -> None:
        if self.devices < 1 or self.devices_per_connection < 1 or self.trust_group_size < 1:
            raise ValueError("devices, devices_per_connection and trust_group_size must be >= 1")
        if not self.time_scale > 0 or not (self.start_hour is None or 0 <= self.start_hour < 24):
            raise ConfigError("simulator time_scale must be > 0 and start_hour in [0, 24)")


class SimClock:
    """Simulated unix time: ``scale`` times faster than real time, from ``start_hour``."""

    def __init__(self, scale: float, start_hour: float | None, now: float) -> None:
        self.scale = scale
        self.real_start = now
        day_start = now - now % DAY_S
        self.sim_start = now if start_hour is None else day_start + start_hour * 3600.0

    def at(self, now: float) -> float:
        """The simulated time at real time ``now``."""
        return self.sim_start + (now - self.real_start) * self.scale


class FleetSimulator:
    """Runs a simulated fleet until :meth:`stop`."""

    def __init__(
        self,
        broker_url: str | BrokerSettings,
        root_json: Path,
        workdir: Path,
        settings: SimulatorSettings,
        *,
        device_broker: Callable[[str], BrokerSettings] | None = None,
    ) -> None:
        """A fleet that connects on :meth:`start`.

        ``broker_url``: how every device connects (anonymously, or all as one user, on a lab
        broker); ``device_broker``: how each device connects instead, by its id (its own user
        and password, one connection per device).

        Raises:
            ConfigError: ``device_broker`` with ``devices_per_connection`` > 1 (a connection
                has one user, and the broker would drop the other devices' messages).
        """
        self.broker = BrokerSettings(url=broker_url) if isinstance(broker_url, str) else broker_url
        self.device_broker = device_broker
        if device_broker is not None and settings.devices_per_connection > 1:
            raise ConfigError(
                "per-device credentials need one connection per device: "
                "devices_per_connection must be 1"
            )
        self.root_json = root_json
        self.workdir = workdir
        self.settings = settings
        s = settings
        self.clock = SimClock(s.time_scale, s.start_hour, time.time())
        reference = synthetic_reference(s.seed) if s.drift.fraction > 0 else None
        on_battery = spread(s.devices, s.supply.battery_fraction)
        drifting = spread(s.devices, s.drift.fraction, reverse=True)
        self.devices = []
        for i, device_id in enumerate(s.device_ids()):
            physics = random.Random(f"{s.seed}:{device_id}:physics")
            self.devices.append(
                SimDevice(
                    device_id,
                    s.model,
                    s.faults,
                    s.seed,
                    active=s.initial_release,
                    supply=new_supply(physics, s.supply, i in on_battery),
                    policy=s.power_policy,
                    drift_state=None
                    if reference is None
                    else new_drift_state(
                        physics, s.drift, reference, self.clock.sim_start, i in drifting
                    ),
                )
            )
        self.by_id = {d.device_id: d for d in self.devices}
        self.counters = TrustCounters()
        self.published: Counter[str] = Counter()
        self.rounds = 0
        self.last_error = ""
        self._connections: list[MqttClient] = []
        self._client_of: dict[str, MqttClient] = {}
        self._groups: list[TrustGroup] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._publish_lock = threading.Lock()
        self._seen_notify: int | None = None
        self.on_round: Callable[[FleetSimulator], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FleetSimulator:
        """Connect every device, publish their status, start reporting and following."""
        try:
            self._connect()
            self._make_trust_groups()
            for device in self.devices:
                self._publish(device.device_id, DeviceChannel.STATUS, device.status(), retain=True)
            self._connections[0].subscribe(topics.registry_notify(), self._on_notify)
            loops = ((self._report_loop, "sim-report"), (self._update_loop, "sim-update"))
            for target, name in loops:
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Publish every device offline, stop the threads, disconnect."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()
        infos = []
        for device in self.devices:
            client = self._client_of.get(device.device_id)
            if client is not None and client.connected:
                topic = topics.device_topic(device.device_id, DeviceChannel.STATUS)
                infos.append(client.publish(topic, device.offline(), qos=1, retain=True))
        for info in infos:  # a moment for each; a link gone meanwhile leaves it to the will
            wait_acknowledged(info, 2)
        for group in self._groups:
            group.close()
        for client in self._connections:
            client.close()
        self._connections.clear()

    def __enter__(self) -> FleetSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observing -------------------------------------------------------------------------

    def active_counts(self) -> Counter[int | None]:
        """How many devices run each release (None: nothing)."""
        return Counter(d.active for d in self.devices)

    def stats(self) -> dict[str, Any]:
        """Messages, real TUF work, rounds and device states."""
        return {
            "devices": len(self.devices),
            "connections": len(self._connections),
            "trust_groups": len(self._groups),
            "independent_devices": sum(1 for g in self._groups if len(g.members) == 1),
            "messages": dict(self.published),
            "messages_total": sum(self.published.values()),
            "tuf": self.counters.as_dict(),
            "update_rounds": self.rounds,
            "active": {str(k): v for k, v in self.active_counts().items()},
            "sim_time": self.clock.at(time.time()),
            "battery_devices": sum(1 for d in self.devices if d.supply.supply == "battery"),
            "saving": sorted(d.device_id for d in self.devices if d.power.mode == "saving"),
            "power_switches": sum(d.power_switches for d in self.devices),
            "drift_alarms": sorted(
                d.device_id
                for d in self.devices
                if d.drift_state is not None
                and any(a.level == "alarm" for a in d.drift_state.detector.alarms.values())
            ),
        }

    def wake(self) -> None:
        """Check the registry now (as a notification would)."""
        self._wake.set()

    # -- setup -----------------------------------------------------------------------------

    def _connect(self) -> None:
        s = self.settings
        per = s.devices_per_connection
        for index in range(0, len(self.devices), per):
            chunk = self.devices[index : index + per]
            will = None
            if len(chunk) == 1:
                topic = topics.device_topic(chunk[0].device_id, DeviceChannel.STATUS)
                will = LastWill(topic, chunk[0].offline())
            broker = (
                self.broker
                if self.device_broker is None
                else self.device_broker(chunk[0].device_id)
            )
            client = MqttClient.from_settings(
                broker,
                f"{s.client_id_prefix}-{chunk[0].device_id}",
                will=will,
                max_inflight=1000,
            )
            client.connect(timeout_s=30)
            self._connections.append(client)
            for device in chunk:
                self._client_of[device.device_id] = client

    def _make_trust_groups(self) -> None:
        s = self.settings
        ids = [d.device_id for d in self.devices]
        independent = len(ids) if s.independent is None else min(s.independent, len(ids))
        # Spread the independent devices over the fleet (and so over the waves).
        step = len(ids) / independent if independent else 0.0
        solo = {ids[int(i * step)] for i in range(independent)}
        shared = [d for d in ids if d not in solo]
        groups = [[d] for d in ids if d in solo]
        groups += [
            shared[i : i + s.trust_group_size] for i in range(0, len(shared), s.trust_group_size)
        ]
        for members in groups:
            leader = members[0]
            self._groups.append(
                TrustGroup(
                    leader,
                    members,
                    self._client_of[leader],
                    self.workdir / "trust",
                    self.root_json,
                    s.fetch,
                    self.counters,
                )
            )

    # -- publishing ------------------------------------------------------------------------

    def _publish(
        self, device_id: str, channel: DeviceChannel, payload: bytes, retain: bool = False
    ) -> None:
        client = self._client_of[device_id]
        client.publish(topics.device_topic(device_id, channel), payload, qos=1, retain=retain)
        with self._publish_lock:
            self.published[channel.value] += 1

    # -- reporting -------------------------------------------------------------------------

    def _report_loop(self) -> None:
        s = self.settings
        next_at = time.monotonic()
        last_sim = self.clock.at(time.time())
        reports = 0
        while not self._stop.is_set():
            now = time.time()
            sim_now = self.clock.at(now)
            dt_s, last_sim = sim_now - last_sim, sim_now
            reports += 1
            drift_due = reports % s.drift.every_reports == 0
            for device in self.devices:
                for event in device.advance(sim_now, dt_s, s.supply, now):
                    self._publish(device.device_id, DeviceChannel.TELEMETRY, event)
                device.infer(round(s.inferences_per_report * device.inference_share()))
                self._publish(device.device_id, DeviceChannel.TELEMETRY, device.telemetry(now))
                if drift_due:
                    for payload in device.drift(sim_now, s.drift, now):
                        self._publish(device.device_id, DeviceChannel.DRIFT, payload)
            next_at += s.report_interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    # -- following the registry ------------------------------------------------------------

    def _on_notify(self, message: Message) -> None:
        self._wake.set()  # a nudge only: TUF decides what is new

    def _update_loop(self) -> None:
        s = self.settings
        with ThreadPoolExecutor(max_workers=s.update_workers, thread_name_prefix="sim-tuf") as pool:
            while not self._stop.is_set():
                self._wake.wait(s.check_interval_s)
                self._wake.clear()
                if self._stop.is_set():
                    return
                futures = [pool.submit(self._follow, group) for group in self._groups]
                for future in futures:
                    try:
                        future.result()
                    except Exception as exc:  # one group's failure must not stop the others
                        self.last_error = str(exc)
                        log.warning("simulated trust group failed: %s", exc)
                self.rounds += 1
                if self.on_round is not None:
                    self.on_round(self)

    def _follow(self, group: TrustGroup) -> None:
        if self._stop.is_set():
            return
        s = self.settings
        try:
            verified = group.refresh(s.model, s.group)
        except EdgeAgentError as exc:
            self.last_error = f"{group.leader}: {exc}"
            return
        for device_id in group.members:
            if self._stop.is_set():
                return
            device = self.by_id[device_id]
            plan = self._plan(device, verified)
            if plan.action == "install" and plan.release is not None:
                self._install(group, device, plan)
            elif plan.action == "roll_back" and plan.release is not None:
                assert plan.leaving is not None
                device.roll_back(plan.release)
                self._publish(
                    device_id,
                    DeviceChannel.ROLLOUT,
                    device.transition(plan.leaving, UpdateState.ROLLED_BACK, plan.reason),
                )
                self._publish(device_id, DeviceChannel.STATUS, device.status(), retain=True)

    def _plan(self, device: SimDevice, verified: Verified) -> DevicePlan:
        doc = verified.document
        with device.lock:
            active, rejected = device.active, set(device.rejected)
        if doc is not None and doc.model == self.settings.model:
            return plan_for_device(doc, device.device_id, time.time(), active, rejected)
        if active is None and verified.releases:  # no rollout: first install takes the newest
            newest = max(verified.releases)
            if newest not in rejected:
                return DevicePlan("install", newest, "no rollout: newest signed release")
        return DevicePlan("stay", active, "no rollout for this model")

    def _install(self, group: TrustGroup, device: SimDevice, plan: DevicePlan) -> None:
        assert plan.release is not None
        release, device_id = plan.release, device.device_id
        self._publish(
            device_id,
            DeviceChannel.ROLLOUT,
            device.transition(release, UpdateState.DOWNLOADING, f"release {release}"),
        )
        try:
            group.ensure_downloaded(self.settings.model, release)
        except (EdgeAgentError, TransportError) as exc:
            self._publish(
                device_id,
                DeviceChannel.ROLLOUT,
                device.transition(release, UpdateState.FAILED, str(exc)),
            )
            return
        self._publish(
            device_id,
            DeviceChannel.ROLLOUT,
            device.transition(
                release, UpdateState.VERIFIED, "length and sha256 match signed metadata"
            ),
        )
        if install_fails(device.rng, self.settings.faults):
            reason = "simulated install failure"
            device.reject(release, reason)
            self._publish(
                device_id,
                DeviceChannel.ROLLOUT,
                device.transition(release, UpdateState.FAILED, reason),
            )
            return
        device.activate(release)
        self._publish(
            device_id,
            DeviceChannel.ROLLOUT,
            device.swap_event(release, SwapState.ACTIVE, plan.reason),
        )
        self._publish(device_id, DeviceChannel.STATUS, device.status(), retain=True)
