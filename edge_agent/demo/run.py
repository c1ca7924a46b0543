"""The demo: the whole system on this machine, from signed delivery to drift and power.

Broker, signed repository, registry, monitor, an agent on a video, a rollout, a battery
fleet going through the night, and a drift episode on the agent.

Everything runs in this process except Mosquitto (when installed), on 127.0.0.1, in a work
folder of fresh keys and state. Mosquitto runs the deployment's own config (deploy/mosquitto.conf
and its ACL: TLS, no anonymous clients, one password per user, each device confined to its own
topics) with a CA made at start-up in ``WORK/tls`` and each user's password in
``WORK/credentials/USER.pw``; every component logs in as its own user (``registry``,
``monitor``, the agent and each simulated device as their device ids), so what a user runs
first is what they deploy. The embedded broker (no Mosquitto) is plain and anonymous.

Each step says what it did; the dashboard URL stays up until Ctrl-C (or ``duration_s``), then
everything stops in reverse order. The simulated fleet runs on a clock 720 times faster than
real time from 04:00, so its battery devices enter the power policy's saving mode in the night
and leave it in the morning, once the sun has recharged them to the resume threshold, within
the first minute; the drift episode (``episodes.py``) brightens the
agent's video until the monitor has the alarm, the alert and samples captured on drift, then
restores it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edge_agent.agent.process import Agent
from edge_agent.config import AgentConfig, BrokerSettings
from edge_agent.convert.package import PackageRequest, build_package
from edge_agent.demo import episodes
from edge_agent.demo import settings as demo_settings
from edge_agent.demo.broker import EmbeddedBroker, PrivateBroker, wants_mosquitto
from edge_agent.demo.samples import DigitsVideo, make_digits_video, samples_dir
from edge_agent.demo.secured_broker import broker_root, prepare_secured_mosquitto
from edge_agent.demo.settings import DEVICE, GROUP, MODEL, SIM_PREFIX, TIME_SCALE
from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.provision import SERVICE_USERS
from edge_agent.fleet.registry import RegistryServer, RegistrySettings
from edge_agent.transport.client import MqttClient
from edge_agent.trust.operator.publish import add_model
from edge_agent.trust.operator.repository import OperatorRepository
from edge_agent.wire.states import SwapState


class _Stopped(Exception):
    """Raised between demo steps once a stop was asked for."""


@dataclass
class DemoOptions:
    """What the demo does and for how long."""

    workdir: Path | None = None
    duration_s: float | None = None
    """Stop by itself after this long (None: run until Ctrl-C)."""
    frames: int = 300
    broker: str = "auto"
    """``auto`` (Mosquitto if installed, else embedded), ``mosquitto`` (secured, the shipped
    config) or ``embedded`` (plain, anonymous)."""
    simulated_devices: int = 11
    """Simulated agents beside the real one, so the rollout has waves to walk through."""


@dataclass
class DemoReport:
    """What happened, for the caller (tests read it)."""

    broker: str = ""
    broker_ca: Path | None = None
    """The CA the secured broker's certificate verifies against (None: embedded, plain)."""
    credentials: Path | None = None
    """The folder of each broker user's password file, ``USER.pw`` (None: embedded)."""
    dashboard: str = ""
    api: str = ""
    steps: list[str] = field(default_factory=list)
    versions_served: list[str] = field(default_factory=list)
    power_cycle: list[str] = field(default_factory=list)
    """The simulated device that entered and left the saving mode, and both reasons."""
    drift: dict[str, Any] = field(default_factory=dict)
    """The agent's drift episode as the monitor saw it (alarm, alert, samples, cleared)."""
    frames: int = 0
    accuracy: float | None = None


class Demo:
    """Runs the demo; ``run`` blocks until stopped."""

    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console()
        self.report = DemoReport()
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self.broker: PrivateBroker | None = None
        """The running broker (a ``SecuredMosquitto`` unless embedded), once started."""
        self._access: Callable[[str], BrokerSettings] = lambda _user: BrokerSettings(
            url=self.report.broker
        )
        """How a broker user (a service, a device id) reaches the broker."""

    def stop(self) -> None:
        """Ask ``run`` to finish (from a signal handler or another thread)."""
        self._stop.set()

    def step(self, title: str, detail: str) -> None:
        """Print and record one step."""
        number = len(self.report.steps) + 1
        self.report.steps.append(f"{title}: {detail}")
        self.console.print(f"[bold cyan]{number:>2}. {title:<11}[/] {detail}")

    def run(self) -> DemoReport:
        """Set everything up, roll out v2, then wait for Ctrl-C or the duration.

        A stop (Ctrl-C) at any point skips the remaining steps; what was started stops in
        reverse order, the broker last.
        """
        with self._stack, contextlib.suppress(_Stopped):
            self._quiet_reported_warnings()
            self._steps()
        self.console.print("[bold]stopped cleanly[/]")
        return self.report

    def _quiet_reported_warnings(self) -> None:
        """The drift alarm and its alert are demo steps: their log warnings would repeat them."""
        for name in ("edge_agent.telemetry.drift", "edge_agent.fleet.monitor.alerts"):
            logger = logging.getLogger(name)
            self._stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)

    def _steps(self) -> None:
        work = self._workdir()
        broker = self._broker(work)
        repo = self._repository(work)
        self._go_on()
        v1 = self._publish(
            repo, work, samples_dir() / MODEL / f"{MODEL}_fp32.tflite", "1.0.0", "fp32 LiteRT"
        )
        self._registry(work, broker)
        monitor = self._monitor(work, broker)
        self._go_on()
        video = make_digits_video(work / "digits.avi", count=self.options.frames, fps=25.0)
        agent = self._agent(work, broker, repo, video)
        fleet = self._fleet(work, broker)
        self._wait_for_version(agent, "1", 120, f"the signed release {v1} to arrive")
        self._report_pipeline(agent, video, "v1")
        v2 = self._publish(
            repo,
            work,
            samples_dir() / MODEL / f"{MODEL}_int8.tflite",
            "1.1.0",
            "int8 LiteRT",
        )
        self._rollout(work, repo, monitor, v2, [DEVICE, *fleet])
        self._wait_for_version(agent, "2", 120, "release 2 to pass the shadow check")
        self._report_pipeline(agent, video, "v2")
        self._show_rollout_events(agent)
        self._power_cycle(monitor)
        self._drift_episode(monitor, video)
        self._summary(monitor)
        self._wait()

    def _go_on(self) -> None:
        """Leave the remaining steps once a stop was asked for."""
        if self._stop.is_set():
            raise _Stopped

    # -- the steps -------------------------------------------------------------------------

    def _workdir(self) -> Path:
        if self.options.workdir is not None:
            self.options.workdir.mkdir(parents=True, exist_ok=True)
            return self.options.workdir
        return Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-demo-")))

    def _broker(self, work: Path) -> PrivateBroker:
        if not wants_mosquitto(self.options.broker):
            embedded = EmbeddedBroker()
            self._stack.callback(embedded.stop)
            self.broker = embedded
            self.report.broker = embedded.url
            self.step(
                "broker",
                f"{embedded.kind} on {embedded.url}: plain MQTT, anonymous clients (install "
                "Mosquitto for the secured broker a site runs)",
            )
            return embedded
        root = broker_root(work)
        if root != work / "broker":  # made for the broker's user: it goes with the broker
            self._stack.callback(shutil.rmtree, root, True)
        users = (*sorted(SERVICE_USERS), DEVICE, *self._simulated_ids())
        broker = prepare_secured_mosquitto(root, work / "tls", work / "credentials", users)
        broker.start()
        self._stack.callback(broker.stop)
        self.broker = broker
        self._access = broker.settings
        self.report.broker = broker.url
        self.report.broker_ca = broker.authority.cert
        self.report.credentials = broker.clients_dir
        self.step(
            "broker",
            f"mosquitto on {broker.url} with the shipped deploy/mosquitto.conf: TLS, no "
            f"anonymous clients, one password for each of its {len(users)} users, every device "
            "confined to its own topics by deploy/mosquitto.acl",
        )
        self.step(
            "credentials",
            f"a throwaway CA made now ({broker.authority.cert}); each user's password in "
            f"{broker.clients_dir}/USER.pw",
        )
        return broker

    def _simulated_ids(self) -> list[str]:
        if self.options.simulated_devices <= 0:
            return []
        return demo_settings.fleet_settings(self.options.simulated_devices).device_ids()

    def _repository(self, work: Path) -> OperatorRepository:
        repo = OperatorRepository.init(work / "repo", work / "keys")
        self.step(
            "repository",
            f"fresh ed25519 keys in {work / 'keys'}; root, targets, "
            "snapshot, timestamp and the delegated rollouts role signed",
        )
        return repo

    def _publish(
        self, repo: OperatorRepository, work: Path, model: Path, version: str, what: str
    ) -> int:
        package = work / "packages" / f"{MODEL}-{version}"
        profile = episodes.reference_profile(
            model, work / f"{MODEL}-{version}.profile.json", self.options.frames
        )
        build_package(
            PackageRequest(
                model=model,
                name=MODEL,
                version=version,
                output=package,
                profile=profile,
                force=True,
            )
        )
        release = add_model(repo, package)
        self.step(
            "publish",
            f"{MODEL} {version} ({what}, {model.stat().st_size // 1024} KiB) "
            f"packaged with its drift profile and signed as release {release.release}",
        )
        return release.release

    def _registry(self, work: Path, broker: PrivateBroker) -> None:
        client = MqttClient.from_settings(self._access("registry"), "registry")
        client.connect()
        self._stack.callback(client.close)
        server = RegistryServer(work / "repo", client, RegistrySettings(notify_poll_s=0.5))
        server.start()
        self._stack.callback(server.stop)
        self.step("registry", "serving signed metadata and model chunks over MQTT")

    def _monitor(self, work: Path, broker: PrivateBroker) -> Any:
        from edge_agent.fleet.monitor.ingest import IngestSettings
        from edge_agent.fleet.monitor.monitor import Monitor, MonitorSettings

        # one monitor: no shared subscription (the embedded broker has none), a fresh session
        ingest = IngestSettings(client_id="monitor", group=None, clean_session=True)
        settings = MonitorSettings(http="127.0.0.1:0", ingest=ingest)
        database = f"sqlite:///{work / 'monitor.db'}"
        monitor = Monitor(database, self._access("monitor"), settings).start()
        self._stack.callback(monitor.stop)
        self.report.dashboard = f"http://{monitor.http_address}/"
        self.step("monitor", f"ingesting the fleet; dashboard at {self.report.dashboard}")
        return monitor

    def _agent(
        self, work: Path, broker: PrivateBroker, repo: OperatorRepository, video: DigitsVideo
    ) -> Agent:
        root = work / "repo" / "metadata" / "1.root.json"
        config = AgentConfig.model_validate(
            demo_settings.agent_config(work, self._access(DEVICE), broker.kind, video, root)
        )
        agent = Agent(config)
        agent.start()
        self._stack.callback(agent.stop)
        self.report.api = agent.api.address
        self.step(
            "agent",
            f"{DEVICE} follows the registry for {MODEL}; pipeline 'door-cam' "
            f"on a {self.options.frames}-frame video of test digits; inference API on "
            f"http://{agent.api.address}/v2",
        )
        return agent

    def _fleet(self, work: Path, broker: PrivateBroker) -> list[str]:
        """Simulated agents (real MQTT, real TUF) in the same rollout group."""
        if self.options.simulated_devices <= 0:
            return []
        from edge_agent.fleet.simulator import FleetSimulator

        settings = demo_settings.fleet_settings(self.options.simulated_devices)
        simulator = FleetSimulator(
            broker.url,
            work / "repo" / "metadata" / "1.root.json",
            work / "simulator",
            settings,
            device_broker=self._access,  # each device logs in as itself
        ).start()
        self._stack.callback(simulator.stop)
        ids = [device.device_id for device in simulator.devices]
        batteries = sum(1 for device in simulator.devices if device.supply.supply == "battery")
        self.step(
            "fleet",
            f"{len(ids)} simulated agents in group '{GROUP}' (real MQTT and TUF "
            f"verification, synthetic inference and telemetry); {batteries} on solar-charged "
            f"batteries, the rest on mains, on a clock {TIME_SCALE:.0f}x real time from 04:00",
        )
        return ids

    def _rollout(
        self, work: Path, repo: OperatorRepository, monitor: Any, release: int, members: list[str]
    ) -> None:
        """Roll ``release`` out to the group in two waves, gated on the monitor's data."""
        from edge_agent.fleet.rollout import GateThresholds, RolloutController
        from edge_agent.fleet.rollout.health import MonitorHealth

        controller = RolloutController(repo, work / "rollouts.json", MonitorHealth(monitor))
        gates = GateThresholds(
            min_inferences=20,
            soak_s=2,
            wave_timeout_s=120,
            window_s=30,
            min_coverage=1.0,
            max_latency_ratio=3.0,
        )
        controller.create(GROUP, MODEL, release, members, waves=(25, 100), thresholds=gates)
        self.step(
            "rollout",
            f"release {release} to group '{GROUP}' ({len(members)} devices) in "
            "waves of 25% and 100%, signed by the rollouts role",
        )
        seen: set[tuple[str, int]] = set()

        def show(record: Any, decision: Any) -> None:
            key = (decision.action, len(record.opened))
            if decision.action != "wait" and key not in seen:
                seen.add(key)
                self.step("rollout", f"{decision.action}: {decision.reason}")

        record = controller.follow(GROUP, poll_s=1.0, stop=self._stop, on_step=show)
        self._go_on()
        if record.status != "completed":
            raise EdgeAgentError(f"demo: the rollout ended {record.status}: {record.reason}")

    def _wait_for_version(self, agent: Agent, version: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            served = agent.models.get(MODEL)
            if served is not None and served.active.version == version:
                self.report.versions_served.append(version)
                backend = served.active.backend
                self.step(
                    "delivered",
                    f"{MODEL} release {version} verified (TUF), installed "
                    f"and serving on {backend.delegate.name}",
                )
                return
            time.sleep(0.2)
        self._go_on()
        raise EdgeAgentError(f"demo: timed out waiting for {what}; see the log above")

    def _report_pipeline(self, agent: Agent, video: DigitsVideo, label: str) -> None:
        self._stop.wait(2.0)  # let frames flow on this version
        self._go_on()
        path = agent.config.store_dir.parent / "results.jsonl"
        records = (
            [json.loads(line) for line in path.read_text().splitlines()[-200:]]
            if path.exists()
            else []
        )
        judged = [
            (int(r["frame"]) % len(video.labels), r)
            for r in records
            if r.get("result", {}).get("top")
        ]
        correct = sum(
            1 for i, r in judged if int(r["result"]["top"][0]["label"]) == video.labels[i]
        )
        stats = agent.pipelines[0].stats()
        self.report.frames = int(stats["processed"])
        self.report.accuracy = correct / len(judged) if judged else None
        accuracy = f"{100 * correct / len(judged):.1f}%" if judged else "n/a"
        self.step(
            "pipeline",
            f"{label}: {stats['processed']} frames at {stats['fps']:.0f} fps, "
            f"top-1 right on {accuracy} of the last {len(judged)} frames",
        )

    def _show_rollout_events(self, agent: Agent) -> None:
        for event in agent._events:  # the swap controller's account of the change
            if event["state"] in (SwapState.ACTIVE, SwapState.REJECTED, SwapState.ROLLED_BACK):
                evidence = event.get("evidence", {})
                self.step(
                    "rollout",
                    f"v{event['version']} {event['state']}: {event['reason']} "
                    f"(compared {evidence.get('compared', 0)} live inferences)",
                )

    def _until(self, what: str, timeout_s: float, check: Any) -> Any:
        """Poll ``check`` until it returns something truthy; EdgeAgentError on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._go_on()
            found = check()
            if found:
                return found
            self._stop.wait(0.5)
        self._go_on()
        raise EdgeAgentError(f"demo: timed out waiting for {what}; see the log above")

    def _power_cycle(self, monitor: Any) -> None:
        """A battery device's night and morning, as the monitor got them."""
        if self.options.simulated_devices <= 0:
            return
        device, entered, left = self._until(
            "a simulated battery device to enter and leave the saving mode",
            90,
            lambda: episodes.power_cycle(monitor.store, SIM_PREFIX),
        )
        self.report.power_cycle = [device, entered["reason"], left["reason"]]
        self.step("power", f"{device} entered the saving mode at night: {entered['reason']}")
        self.step("power", f"{device} left it once the sun recharged it: {left['reason']}")

    def _drift_episode(self, monitor: Any, video: DigitsVideo) -> None:
        """Brighten the agent's video until the alarm, alert and drift samples are in."""
        store, since = monitor.store, time.time()
        episode = episodes.DriftEpisode(video)
        episode.start()
        self._stack.callback(episode.end)  # a stop mid-episode still leaves the clean video
        self.step(
            "drift", f"the lighting changes: the video is {episode.brightness} levels brighter"
        )
        raised = self._until(
            "the drift alarm",
            60,
            lambda: [
                e
                for e in episodes.events(store, DEVICE, "drift_alarm", since)
                if e["state"] == "alarm"
            ],
        )
        self.step("drift", f"{DEVICE} raised a drift alarm ({raised[0]['reason']})")
        alert = self._until(
            "the drift alert", 30, lambda: episodes.alert_fired(store, "drift_alarm", DEVICE, since)
        )
        self.step("alert", alert["message"])
        captured = self._until(
            "samples captured on drift",
            30,
            lambda: episodes.samples_by_strategy(store, DEVICE, "drift", since, at_least=10),
        )
        self.step("capture", f"{captured} samples captured on drift reached the monitor")
        episode.end()
        cleared_since = time.time()
        self._until(
            "the drift alarm to clear",
            60,
            lambda: [
                e
                for e in episodes.events(store, DEVICE, "drift_alarm", cleared_since)
                if e["state"] == "ok"
            ],
        )
        self.step("drift", "the lighting is back: the drift alarm cleared")
        self.report.drift = {
            "alarm": raised[0]["reason"],
            "alert": alert["message"],
            "samples": captured,
            "cleared": True,
        }

    def _summary(self, monitor: Any) -> None:
        self.console.print()
        self.console.print(f"[bold green]Dashboard:[/] {self.report.dashboard}")
        base = self.report.dashboard.rstrip("/")
        self.console.print(
            f"[bold green]Power:[/] {base}/power   [bold green]Drift:[/] {base}/drift"
        )
        self.console.print(
            f"[bold green]Inference API:[/] http://{self.report.api}/v2 (Open Inference Protocol)"
        )
        self.console.print(f"[bold green]Broker:[/] {self.report.broker}")
        if self.report.credentials is not None:
            self.console.print(
                "[bold green]Connect to it[/] (any edge-agent command that talks to a broker): "
                f"--broker {self.report.broker} --broker-username operator "
                f"--broker-password-file {self.report.credentials / 'operator.pw'} "
                f"--broker-ca-file {self.report.broker_ca}",
                soft_wrap=True,
            )

    def _wait(self) -> None:
        if self.options.duration_s is not None:
            self._stop.wait(self.options.duration_s)
            return
        self.console.print("Press Ctrl-C to stop.")
        while not self._stop.wait(0.5):
            pass
