"""The agent: wires models, the local API, MQTT, telemetry and systemd into one process.

Start-up is offline-first: models load and the API serves before any broker is reached; the
MQTT client connects in the background and keeps reconnecting. systemd hears READY=1 once the
models are loaded, and WATCHDOG=1 only while the agent makes progress (a stuck pipeline stops
the pings and systemd restarts the agent). SIGTERM drains in-flight requests and flushes the
outbox; SIGHUP re-reads the config and applies it without dropping the active models.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.agent import systemd
from edge_agent.agent.link import device_client, parse_command
from edge_agent.agent.reload import plan_reload
from edge_agent.agent.telemetry import AgentTelemetry
from edge_agent.agent.updates import AgentUpdates
from edge_agent.api import ApiServer
from edge_agent.capture.capturer import SampleCapture
from edge_agent.capture.store import SampleStore
from edge_agent.capture.uploader import SampleUploader
from edge_agent.config import (
    AgentConfig,
    ModelEntry,
    RuntimeSettings,
    ServingSettings,
    load_agent_config,
    resolve_device_config,
)
from edge_agent.delivery.store import InstalledModel
from edge_agent.delivery.update import ShadowVerdict
from edge_agent.errors import ConfigError, EdgeAgentError, TransportError
from edge_agent.pipeline.runner import Pipeline, build_pipeline
from edge_agent.serving import LoadedVersion, ModelRegistry, ServedModel
from edge_agent.serving.gates import SwapGates
from edge_agent.serving.loading import load_version
from edge_agent.serving.metrics import ServingMetrics
from edge_agent.serving.swap import SwapController
from edge_agent.telemetry.profile import load_profile
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel

log = logging.getLogger(__name__)

Progress = Callable[[], float]
"""Returns the monotonic time of a component's last progress (pipelines register these)."""


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
        self.serving = serving or config.serving
        device, self.device_source = resolve_device_config(config.device)
        self.device = device
        self.runtime: RuntimeSettings = config.runtime or device.runtime
        self.models = ModelRegistry()
        self.metrics = ServingMetrics()
        self.controllers: dict[str, SwapController] = {}
        self._entries: dict[str, ModelEntry] = {}
        self.api = ApiServer(self.models, self.metrics, ready=lambda: self.ready)
        self.mqtt: MqttClient | None = None
        self.ready = False
        self.started_at = time.time()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._progress: dict[str, Progress] = {}
        self.telemetry: AgentTelemetry | None = None
        self.pipelines: list[Pipeline] = []
        self.capture: SampleCapture | None = None
        self.samples: SampleStore | None = None
        self.uploader: SampleUploader | None = None
        self.updates: AgentUpdates | None = None
        self._started_pipelines: set[str] = set()
        self._housekeeping: threading.Thread | None = None
        self._housekeeping_beat = time.monotonic()
        self._events: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load every model, start the API, then MQTT in the background; READY=1 to systemd."""
        systemd.notify("STATUS=loading models")
        if self.config.broker is not None:
            self._make_mqtt()
        self.telemetry = AgentTelemetry(
            self.config.device_id,
            self.config.telemetry,
            self.device.sensors,
            self.config.store_dir,
            self.mqtt,
            on_drift_transition=self._on_drift_transition,
        )
        for entry in self.config.models:
            self._add_model(entry)
        if self.config.registry is not None and self.mqtt is not None:
            self.updates = AgentUpdates(
                self.config.registry,
                self.config.store_dir,
                self.mqtt,
                self.config.device_id,
                self._accept_release,
                on_rollout_rollback=self._rollout_rollback,
            )
            for installed in self.updates.installed():
                self._serve_installed(installed)
        self._start_capture()
        self.api.start(self.config.api.listen)
        if self.mqtt is not None:
            self._connect_mqtt()
        if self.updates is not None:
            self.updates.start()
        self._start_pipelines()
        self.ready = True
        self._housekeeping = threading.Thread(
            target=self._housekeep, name="housekeeping", daemon=True
        )
        self._housekeeping.start()
        self.register_progress("housekeeping", lambda: self._housekeeping_beat)
        systemd.notify(
            "READY=1", f"STATUS=serving {len(self.models)} model(s) on {self.api.address}"
        )
        log.info(
            "agent %s ready: %d model(s), API on %s",
            self.config.device_id,
            len(self.models),
            self.api.address,
        )

    def serve_forever(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0); SIGHUP reloads the config. Main thread only."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        watchdog = systemd.watchdog_interval_s()
        while not self._stop.is_set():
            if watchdog is not None and self.healthy():
                systemd.notify("WATCHDOG=1")
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self._stop.wait(min(watchdog or 1.0, 1.0))
        self.stop()
        return 0

    def _housekeep(self) -> None:
        """Periodic work (its own thread, so an embedded Agent reports like the daemon does)."""
        next_status = 0.0
        next_report = time.monotonic() + self.config.telemetry.latency.report_interval_s
        while not self._stop.wait(0.5):
            self._housekeeping_beat = time.monotonic()
            now = self._housekeeping_beat
            for controller in list(self.controllers.values()):
                controller.watch_expired()
            if now >= next_status:
                self.publish_status()
                next_status = now + self.serving.status_interval_seconds
            if now >= next_report and self.telemetry is not None:
                self.telemetry.report(self.status())
                next_report = now + self.config.telemetry.latency.report_interval_s

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
        if self._housekeeping is not None:
            self._housekeeping.join(10)
        for pipeline in self.pipelines:
            pipeline.stop()
        if self.updates is not None:
            self.updates.stop()
        self.api.stop()
        if self.capture is not None:
            self.capture.close()
        if self.uploader is not None:
            self.uploader.stop()
        if self.samples is not None:
            self.samples.close()
        if self.telemetry is not None:
            self.telemetry.report(self.status())  # the last period, kept in the outbox
            if self.telemetry.publisher is not None and self.mqtt is not None:
                self._flush_outbox(timeout_s=5.0)
            self.telemetry.close()
        if self.mqtt is not None:
            self.publish_status(state="offline")
            self.mqtt.close()
        for controller in self.controllers.values():
            controller.close()
        for served in self.models:
            served.active.drain_and_close()
        log.info("agent %s stopped", self.config.device_id)

    def _flush_outbox(self, timeout_s: float) -> None:
        """Give the publisher a moment to send what is queued (the rest waits on disk)."""
        assert self.telemetry is not None and self.mqtt is not None
        deadline = time.monotonic() + timeout_s
        while (
            self.mqtt.connected and len(self.telemetry.outbox) > 0 and time.monotonic() < deadline
        ):
            time.sleep(0.05)

    # -- pipelines and capture ---------------------------------------------------------------

    def _start_capture(self) -> None:
        settings = self.config.capture
        if not settings.enabled:
            return
        self.samples = SampleStore(
            settings.dir or self.config.store_dir / "samples",
            settings.max_bytes,
            settings.max_age_s,
        )
        self.capture = SampleCapture(settings, self.samples)
        for served in self.models:
            self._attach_capture(served)
        if self.mqtt is not None:
            self.uploader = SampleUploader(
                self.samples, self.mqtt, self.config.device_id, settings.upload
            )
            self.uploader.start()

    def _attach_capture(self, served: ServedModel) -> None:
        """Sample ``served`` if capture is on and covers it (also models delivered later)."""
        wanted = self.config.capture.models
        if self.capture is not None and (not wanted or served.name in wanted):
            self.capture.attach(served)

    def _start_pipelines(self) -> None:
        """Start every pipeline whose model is served; the others start when it arrives."""
        for settings in self.config.pipelines:
            if not settings.enabled or settings.name in self._started_pipelines:
                continue
            if self.models.get(settings.model) is None:
                log.info("pipeline %s waits for model %s", settings.name, settings.model)
                continue
            pipeline = build_pipeline(
                settings, self.models, device_id=self.config.device_id, client=self.mqtt
            )
            pipeline.start()
            self.pipelines.append(pipeline)
            self._started_pipelines.add(settings.name)
            self.register_progress(f"pipeline:{pipeline.name}", _progress_of(pipeline))
            log.info(
                "pipeline %s started (%s -> %s)",
                pipeline.name,
                settings.source.type,
                settings.model,
            )

    def _on_drift_transition(self, model: str, raised: bool) -> None:
        if self.capture is not None:
            self.capture.drift_alarm(model, raised)

    # -- health ----------------------------------------------------------------------------

    def register_progress(self, name: str, progress: Progress) -> None:
        """Let a component (a pipeline) take part in the watchdog decision."""
        self._progress[name] = progress

    def healthy(self) -> bool:
        """True while nothing registered for the watchdog is stuck."""
        now = time.monotonic()
        return all(now - last() <= self.serving.stall_seconds for last in self._progress.values())

    def status(self, state: str | None = None) -> dict[str, Any]:
        """The retained status document."""
        models = []
        degraded = False
        for served in self.models:
            backend = served.active.backend
            model_degraded = bool(getattr(backend, "degraded", False))
            degraded |= model_degraded
            models.append(
                {
                    "name": served.name,
                    "version": served.active.version,
                    "delegate": backend.delegate.name,
                    "degraded": model_degraded,
                }
            )
        if state is None:
            state = "degraded" if degraded or not self.healthy() else "online"
        return {
            "device_id": self.config.device_id,
            "state": state,
            "agent_version": __version__,
            "device_class": self.device.device_class,
            "models": models,
            "api": self.api.address,
            "uptime_s": round(time.time() - self.started_at, 1),
            "pipelines": [p.stats() for p in self.pipelines],
            "time": time.time(),
        }

    # -- models ----------------------------------------------------------------------------

    def _gates(self) -> SwapGates:
        return SwapGates(**self.serving.gates.model_dump())

    def _add_model(
        self, entry: ModelEntry, version: str = "1", manifest: Mapping[str, Any] | None = None
    ) -> ServedModel:
        loaded = load_version(
            entry.name,
            version,
            entry.path,
            self.runtime,
            isolation=self.serving.isolation,
            manifest=manifest,
        )
        served = ServedModel(entry.name, loaded)
        self.models.add(served)
        self.metrics.attach(served)
        if self.telemetry is not None:
            reference = load_profile(entry.profile) if entry.profile is not None else None
            self.telemetry.attach(served, reference)
        self._attach_capture(served)
        self.controllers[entry.name] = SwapController(
            served, self._gates(), on_event=self._on_swap_event
        )
        self._entries[entry.name] = entry
        log.info(
            "%s v%s loaded from %s on %s",
            entry.name,
            version,
            entry.path,
            served.active.backend.delegate.name,
        )
        return served

    def swap_in(
        self, name: str, version: str, path: Path, manifest: Mapping[str, Any] | None = None
    ) -> bool:
        """Load ``path`` as a new version of ``name`` and put it through the swap gates."""
        controller = self.controllers[name]
        candidate: LoadedVersion = load_version(
            name,
            version,
            path,
            self.runtime,
            isolation=self.serving.isolation,
            manifest=manifest,
        )
        verdict = controller.try_candidate(candidate)
        self.metrics.swaps.labels(name, "activate" if verdict.ok else "reject").inc()
        self.metrics.mark_active(controller.served)
        return verdict.ok

    def _serve_installed(self, installed: InstalledModel) -> None:
        """Serve a model from the store (at start-up, or its first delivered version)."""
        entry = ModelEntry(name=installed.name, path=installed.path)
        self._add_model(entry, version=str(installed.version), manifest=installed.manifest)

    def _accept_release(self, installed: InstalledModel) -> ShadowVerdict:
        """The update manager's shadow check: the health-gated swap (or first serving)."""
        try:
            if self.models.get(installed.name) is None:
                self._serve_installed(installed)
                if self.ready:
                    self._start_pipelines()  # those that waited for this model
                return ShadowVerdict(True, "first version of this model: nothing to compare")
            ok = self.swap_in(
                installed.name, str(installed.version), installed.path, installed.manifest
            )
        except EdgeAgentError as exc:
            return ShadowVerdict(False, f"cannot load it: {exc}")
        verdict = self.controllers[installed.name].last_verdict
        if verdict is None:
            return ShadowVerdict(ok, "")
        # too little traffic is no verdict on the model: it stays staged and is tried again
        return ShadowVerdict(ok, verdict.reason, conclusive=verdict.conclusive)

    def _rollout_rollback(self, name: str, reason: str) -> None:
        """The group's signed rollout was rolled back: return to the previous release."""
        controller = self.controllers.get(name)
        if controller is not None and controller.previous is not None:
            controller.rollback(reason)  # its event rolls the store back and rejects the bad one
            return
        assert self.updates is not None
        previous = self.updates.store.previous(name)
        if previous is None:
            log.error("%s: the rollout was rolled back but no previous version is installed", name)
            return
        self.updates.roll_back(name, reason)
        if controller is not None:  # not loaded any more (e.g. after a restart): load it
            restored = load_version(
                name,
                str(previous.version),
                previous.path,
                self.runtime,
                isolation=self.serving.isolation,
                manifest=previous.manifest,
            )
            controller.served.swap(restored).drain_and_close()
            self.metrics.mark_active(controller.served)

    def _on_swap_event(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        if event["state"] in ("active", "rolled_back"):
            self.publish_status()  # the monitor sees the version change at once
        registry = self.config.registry
        if (
            event["state"] == "rolled_back"
            and self.updates is not None
            and registry is not None
            and event["model"] in registry.models
        ):
            self.updates.roll_back(event["model"], event["reason"])
        if event["state"] == "rolled_back":
            self.metrics.swaps.labels(event["model"], "rollback").inc()
            served = self.models.get(event["model"])
            if served is not None:
                self.metrics.mark_active(served)
        if self.mqtt is not None:
            self.mqtt.publish(
                topics.device_topic(self.config.device_id, DeviceChannel.ROLLOUT),
                json.dumps(event),
                qos=1,
            )

    def reload(self) -> None:
        """Re-read the config file; add, remove and swap models; never drop a working one."""
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
        local = {n: e for n, e in self._entries.items() if n not in delivered}
        plan = plan_reload(local, self.config, fresh, delivered)
        for name in plan.remove:
            served = self.models.remove(name)
            self.controllers.pop(name).close()
            if self.telemetry is not None:
                self.telemetry.detach(name)
            self._entries.pop(name)
            if served is not None:
                served.active.drain_and_close()
            log.info("%s: no longer served", name)
        for entry in [*plan.add, *plan.swap]:
            try:
                if entry in plan.add:
                    self._add_model(entry)
                    continue
                served = self.models.get(entry.name)
                assert served is not None
                if self.swap_in(entry.name, str(int(served.active.version) + 1), entry.path):
                    self._entries[entry.name] = entry
            except (EdgeAgentError, ValueError) as exc:
                log.error("reload: model %s kept as it was: %s", entry.name, exc)
        for key in plan.needs_restart:
            log.warning("reload: a change of `%s` takes effect at the next restart", key)
        systemd.notify(f"STATUS=serving {len(self.models)} model(s) (reloaded)")

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

    def publish_status(self, state: str | None = None) -> None:
        """Publish the retained status (when connected; the last will covers disconnects)."""
        if self.mqtt is None or not self.mqtt.connected:
            return
        topic = topics.device_topic(self.config.device_id, DeviceChannel.STATUS)
        info = self.mqtt.publish(topic, json.dumps(self.status(state)), qos=1, retain=True)
        if state == "offline":
            info.wait_for_publish(2)

    def _on_command(self, message: Message) -> None:
        """Commands can ask for things; they can never install anything."""
        command = parse_command(message.payload)
        if isinstance(command, str):
            log.warning("command ignored: %s", command)
        elif command.name == "status":
            self.publish_status()
        elif command.name == "reload":
            self.request_reload()
        elif self.capture is None:
            log.warning("command ignored: sample-now needs capture.enabled: true")
        else:
            self.capture.capture_now(command.count, command.model)


def _progress_of(pipeline: Pipeline) -> Progress:
    """When ``pipeline`` last made progress.

    A finished finite source (a video file that ended) is not a stuck pipeline: it counts as
    progressing now.
    """

    def last_progress() -> float:
        return pipeline.last_progress if pipeline.running else time.monotonic()

    return last_progress
