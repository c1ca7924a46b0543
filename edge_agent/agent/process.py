"""The agent: wires models, the local API, MQTT, telemetry and systemd into one process.

Start-up is offline-first: models load and the API serves before any broker is reached; the
MQTT client connects in the background and keeps reconnecting. systemd hears READY=1 once the
models are loaded, and WATCHDOG=1 only while the agent makes progress (a stuck pipeline stops
the pings and systemd restarts the agent). SIGTERM drains in-flight requests and flushes the
outbox; SIGHUP re-reads the config and applies it without dropping the active models.

This module holds the wiring only; each concern lives beside it: ``models`` (loading, swap
gates, releases, rollbacks), ``status`` (the status document), ``pipelines``, ``sampling``
(capture), ``lifecycle`` (housekeeping, signals and the watchdog loop), ``link`` (the MQTT
client and commands), ``telemetry``, ``updates`` and ``reload``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import wire
from edge_agent.agent import systemd
from edge_agent.agent.lifecycle import Housekeeping, serve_until_stopped
from edge_agent.agent.link import RefusalLog, device_client, parse_command
from edge_agent.agent.metrics import AgentCollector
from edge_agent.agent.models import ModelHost, SwapEvent, is_light
from edge_agent.agent.pipelines import Pipelines, Progress
from edge_agent.agent.power import LightVariant
from edge_agent.agent.reload import plan_reload, restart_reason
from edge_agent.agent.sampling import Sampling, start_capture
from edge_agent.agent.status import status_document
from edge_agent.agent.telemetry import AgentTelemetry
from edge_agent.api import ApiServer
from edge_agent.config import (
    AgentConfig,
    RuntimeSettings,
    ServingSettings,
    load_agent_config,
    resolve_device_config,
)
from edge_agent.delivery.layout import StoreLayout
from edge_agent.errors import ConfigError, TransportError
from edge_agent.serving import ModelRegistry, ServedModel
from edge_agent.serving.metrics import ServingMetrics
from edge_agent.serving.swap import SwapController
from edge_agent.telemetry.power_policy import PowerDecision
from edge_agent.telemetry.sensors import SensorReader
from edge_agent.transport import topics
from edge_agent.transport.budget import LinkBudget
from edge_agent.transport.client import Message, MqttClient, wait_acknowledged
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.states import DeviceState, SwapState
from edge_agent.wire.status import Status

if TYPE_CHECKING:
    from edge_agent.agent.updates import AgentUpdates
    from edge_agent.capture.capturer import SampleCapture
    from edge_agent.capture.store import SampleStore
    from edge_agent.capture.uploader import SampleUploader
    from edge_agent.delivery.store import InstalledModel
    from edge_agent.delivery.update import ShadowVerdict
    from edge_agent.pipeline.runner import Pipeline

log = logging.getLogger(__name__)

__all__ = ["Agent", "Progress"]


class Agent:
    """One device's agent process."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        config_path: Path | None = None,
        serving: ServingSettings | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.layout = StoreLayout(config.store_dir)
        self.serving = serving or config.serving
        device, self.device_source = resolve_device_config(config.device)
        self.device = device
        self.runtime: RuntimeSettings = config.runtime or device.runtime
        self.sensors = SensorReader(device.sensors)
        self.host = ModelHost(
            self.runtime, self.serving, on_served=self._on_served, on_event=self._on_swap_event
        )
        self.metrics.registry.register(AgentCollector(self))  # pipelines, drift, power ...
        self.api = ApiServer(
            self.models, self.metrics, ready=lambda: self.ready, settings=config.api
        )
        self.mqtt: MqttClient | None = None
        self.ready = False
        self.started_at = time.time()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._progress: dict[str, Progress] = {}
        self.telemetry: AgentTelemetry | None = None
        self._pipelines = Pipelines(
            config.pipelines,
            self.models,
            device_id=config.device_id,
            register_progress=self.register_progress,
            forget_progress=self._forget_progress,
        )
        self.light = LightVariant(
            self.host, self._pipelines.models, self._report_light, lambda: self.config.models
        )
        """The power policy's light variant, swapped in through the swap gates while saving."""
        self.restart_needed: list[str] = []
        """Config sections changed by a reload that take effect at the next restart."""
        self.sampling: Sampling | None = None
        self.updates: AgentUpdates | None = None
        self._housekeeping = Housekeeping(self._stop)
        self._refusals = RefusalLog()  # a flood of bad commands must not flood the log

    # -- what the parts expose ---------------------------------------------------------------

    @property
    def models(self) -> ModelRegistry:
        """The served models, by name."""
        return self.host.models

    @property
    def metrics(self) -> ServingMetrics:
        """The serving metrics (the API's /metrics)."""
        return self.host.metrics

    @property
    def controllers(self) -> dict[str, SwapController]:
        """Each model's swap controller."""
        return self.host.controllers

    @property
    def _events(self) -> list[SwapEvent]:
        """The latest swap events (the demo tells the story from them)."""
        return list(self.host.events)

    @property
    def pipelines(self) -> list[Pipeline]:
        """The running pipelines."""
        return self._pipelines.running

    @property
    def capture(self) -> SampleCapture | None:
        """The sample capturer, when capture is on."""
        return self.sampling.capture if self.sampling is not None else None

    @property
    def samples(self) -> SampleStore | None:
        """The sample store, when capture is on."""
        return self.sampling.samples if self.sampling is not None else None

    @property
    def uploader(self) -> SampleUploader | None:
        """The sample uploader, when capture is on and there is a broker."""
        return self.sampling.uploader if self.sampling is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load every model, start the API, then MQTT in the background; READY=1 to systemd."""
        systemd.notify("STATUS=loading models")
        if self.config.broker is not None:
            self._make_mqtt()
        self.telemetry = AgentTelemetry(
            self.config.device_id,
            self.config.telemetry,
            self.sensors,
            self.layout.outbox,
            self.mqtt,
            on_drift_transition=self._on_drift_transition,
            on_power_decision=self._on_power_decision,
        )
        self.host.telemetry = self.telemetry
        for entry in self.config.models:
            if entry.serve:  # `serve: false`: a light variant, loaded when swapped in
                self.host.add(entry)
        budget = LinkBudget(self.config.link.max_bytes_per_s, self.config.link.windows)
        if self.config.registry is not None and self.mqtt is not None:
            from edge_agent.agent.updates import AgentUpdates
            from edge_agent.trust.device.variants import platform_of

            self.updates = AgentUpdates(
                self.config.registry,
                self.layout,
                self.mqtt,
                self.config.device_id,
                self._accept_release,
                on_rollout_rollback=self.host.rollout_rollback,
                platform=platform_of(self.device, self.runtime),
                budget=budget,
            )
            self.host.updates = self.updates
            self.host.delivered = self.config.registry.models
            for installed in self.updates.installed():
                self.host.serve_installed(installed)
        self.sampling = start_capture(
            self.config.capture,
            self.layout.capture_dir(self.config.capture),
            self.config.device_id,
            self.models,
            self.mqtt,
            self.sensors,
            budget,
        )
        self.api.start(self.config.api.listen)
        if self.mqtt is not None:
            self._connect_mqtt()
        if self.updates is not None:
            self.updates.start()
        if self.config.telemetry.power.enabled:
            self.telemetry.apply_power_policy()  # pipelines start paced as the battery says
        self._pipelines.start_ready(self.mqtt)
        self.ready = True
        self._start_housekeeping()
        systemd.notify(
            "READY=1", f"STATUS=serving {len(self.models)} model(s) on {self.api.address}"
        )
        log.info(
            "agent %s ready: %d model(s), API on %s",
            self.config.device_id,
            len(self.models),
            self.api.address,
        )

    def _start_housekeeping(self) -> None:
        """Expire swap watches every tick, publish the status, report telemetry."""

        def watch_swaps() -> None:
            for controller in list(self.controllers.values()):
                controller.watch_expired()

        def report() -> None:
            if self.telemetry is not None:
                self.telemetry.report(self.status())

        def apply_power_policy() -> None:
            if self.telemetry is not None:
                self.telemetry.apply_power_policy()

        report_s = self.config.telemetry.latency.report_interval_s
        power = self.config.telemetry.power
        if power.enabled:
            self._housekeeping.every(
                power.check_interval_s, apply_power_policy, first_in_s=power.check_interval_s
            )
        self._housekeeping.every(0, watch_swaps)
        self._housekeeping.every(self.serving.status_interval_seconds, self.publish_status)
        self._housekeeping.every(report_s, report, first_in_s=report_s)
        self._housekeeping.start()
        self.register_progress("housekeeping", lambda: self._housekeeping.beat)

    def serve_forever(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0); SIGHUP reloads the config. Main thread only."""
        serve_until_stopped(self._stop, self._reload, healthy=self.healthy, on_reload=self.reload)
        self.stop()
        return 0

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to stop (from any thread)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask ``serve_forever`` to reload the config (from any thread)."""
        self._reload.set()

    def stop(self) -> None:
        """Stop serving: API first (in-flight requests finish), then MQTT, then the models."""
        systemd.notify("STOPPING=1")
        self.ready = False
        self._stop.set()
        self._housekeeping.join(10)
        self.light.close()
        self._pipelines.stop()
        if self.updates is not None:
            self.updates.stop()
        self.api.stop()
        if self.sampling is not None:
            self.sampling.close()
        if self.telemetry is not None:
            self.telemetry.report(self.status())  # the last period, kept in the outbox
            if self.telemetry.publisher is not None and self.mqtt is not None:
                self._flush_outbox(timeout_s=5.0)
            self.telemetry.close()
        if self.mqtt is not None:
            self.publish_status(state=DeviceState.OFFLINE)
            self.mqtt.close()
        self.host.close()
        log.info("agent %s stopped", self.config.device_id)

    def _flush_outbox(self, timeout_s: float) -> None:
        """Give the publisher a moment to send what is queued (the rest waits on disk)."""
        assert self.telemetry is not None and self.mqtt is not None
        deadline = time.monotonic() + timeout_s
        while (
            self.mqtt.connected and len(self.telemetry.outbox) > 0 and time.monotonic() < deadline
        ):
            time.sleep(0.05)

    # -- health and status -----------------------------------------------------------------

    def _on_power_decision(self, decision: PowerDecision) -> None:
        """Apply the power policy: pipelines' frame rate and the light model variant."""
        self._pipelines.pace(decision.fps)
        self.light.want(decision.model_variant, decision.reasons)

    def _report_light(
        self, model: str, outcome: str, variant: str | None, reasons: list[str]
    ) -> None:
        if self.telemetry is not None:
            self.telemetry.light_variant_event(model, outcome, variant, reasons)

    def register_progress(self, name: str, progress: Progress) -> None:
        """Let a component (a pipeline) take part in the watchdog decision."""
        self._progress[name] = progress

    def _forget_progress(self, name: str) -> None:
        self._progress.pop(name, None)

    def healthy(self) -> bool:
        """True while nothing registered for the watchdog is stuck."""
        now = time.monotonic()
        progress = list(self._progress.values())  # a reload may change the dict meanwhile
        return all(now - last() <= self.serving.stall_seconds for last in progress)

    def status(self, state: DeviceState | None = None) -> Status:
        """The retained status document."""
        return status_document(
            device_id=self.config.device_id,
            device_class=self.device.device_class,
            models=self.models,
            api_address=self.api.address,
            started_at=self.started_at,
            pipelines=self._pipelines.stats(),
            healthy=self.healthy(),
            state=state,
            restart_needed=self.restart_needed,
        )

    # -- models ----------------------------------------------------------------------------

    def swap_in(
        self, name: str, version: str, path: Path, manifest: Mapping[str, Any] | None = None
    ) -> bool:
        """Load ``path`` as a new version of ``name`` and put it through the swap gates."""
        return self.host.swap_in(name, version, path, manifest)

    def _on_served(self, served: ServedModel) -> None:
        if self.sampling is not None:
            self.sampling.attach(served)

    def _on_drift_transition(self, model: str, raised: bool) -> None:
        if self.sampling is not None:
            self.sampling.capture.drift_alarm(model, raised)

    def _accept_release(self, installed: InstalledModel) -> ShadowVerdict:
        """The update manager's shadow check; a first version also starts its pipelines."""
        first = self.models.get(installed.name) is None
        verdict = self.host.accept_release(installed)
        if first and verdict.ok and self.ready:
            self._pipelines.start_ready(self.mqtt)  # those that waited for this model
        return verdict

    def _on_swap_event(self, event: SwapEvent) -> None:
        if event["state"] == SwapState.ROLLED_BACK and is_light(str(event["version"])):
            self.light.rolled_back(event["model"], event["version"], event["reason"])
        if event["state"] in (SwapState.ACTIVE, SwapState.ROLLED_BACK):
            self.publish_status()  # the monitor sees the version change at once
        if self.mqtt is not None:
            self.mqtt.publish(
                topics.device_topic(self.config.device_id, DeviceChannel.ROLLOUT),
                wire.SwapEvent.model_validate(event).encode(),
                qos=1,
            )

    def reload(self) -> None:
        """Re-read the config file and apply what can change live; name what cannot.

        Models are added, removed and swapped (never dropping a working one) and pipelines
        restarted as they changed; a changed restart-only section is logged, shown in the
        systemd status and listed in the status document's ``restart_needed`` until it is
        reverted or the agent restarts (see :mod:`edge_agent.agent.reload`).
        """
        if self.config_path is None:
            log.info("reload asked, but the agent runs without a config file")
            return
        try:
            fresh = load_agent_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            systemd.notify(f"STATUS=reload refused: {str(exc).splitlines()[0]}")
            return
        delivered = set(self.config.registry.models) if self.config.registry else set()
        local = {n: e for n, e in self.host.entries.items() if n not in delivered}
        plan = plan_reload(local, self.config, fresh, delivered)
        self._pipelines.stop_named(plan.stop_pipelines)  # before their models may go
        self.host.apply_reload(plan)
        self.config = plan.running
        self._pipelines.replace(self.config.pipelines, self.mqtt)
        for section in plan.needs_restart:
            log.warning(
                "reload: `%s` changed; it takes effect at the next restart (%s)",
                section,
                restart_reason(section),
            )
        self.restart_needed = plan.needs_restart
        pending = f"; restart needed for {', '.join(plan.needs_restart)}"
        systemd.notify(
            f"STATUS=serving {len(self.models)} model(s) (reloaded"
            f"{pending if plan.needs_restart else ''})"
        )
        self.publish_status()

    # -- MQTT ------------------------------------------------------------------------------

    def _make_mqtt(self) -> None:
        self.mqtt = device_client(self.config)
        self.mqtt.on_connection_change(self._on_connection_change)
        self.mqtt.subscribe(
            topics.device_topic(self.config.device_id, DeviceChannel.CMD), self._on_command
        )

    def _connect_mqtt(self) -> None:
        assert self.mqtt is not None
        try:
            self.mqtt.start_in_background()
        except (OSError, ValueError, TransportError) as exc:  # e.g. DNS down: keep serving
            log.warning("MQTT not started yet (%s); serving offline", exc)

    def _on_connection_change(self, connected: bool) -> None:
        if connected:
            self.publish_status()

    def publish_status(self, state: DeviceState | None = None) -> None:
        """Publish the retained status (when connected; the last will covers disconnects)."""
        if self.mqtt is None or not self.mqtt.connected:
            return
        topic = topics.device_topic(self.config.device_id, DeviceChannel.STATUS)
        info = self.mqtt.publish(topic, self.status(state).encode(), qos=1, retain=True)
        if state is DeviceState.OFFLINE:  # at stop: a moment for it, else the last will says so
            wait_acknowledged(info, 2)

    def _on_command(self, message: Message) -> None:
        """Commands can ask for things; they can never install anything."""
        command = parse_command(message.payload)
        if isinstance(command, str):
            self._refusals.refused(command)
        elif command.name == "status":
            self.publish_status()
        elif command.name == "reload":
            self.request_reload()
        elif self.sampling is None:
            log.warning("command ignored: sample-now needs capture.enabled: true")
        else:
            self.sampling.capture.capture_now(command.count, command.model)
