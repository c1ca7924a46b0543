"""The agent following the signed registry: delivery, health-gated activation, rejection."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.process import Agent
from edge_agent.config import AgentConfig
from edge_agent.delivery.store import ModelStore
from tests.fakes.delivery_env import delivery_env
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for

onnx = pytest.importorskip("onnx")


def shuffled_classes_model(source: Path, target: Path) -> Path:
    """A validly signed but bad model: the digits CNN with its class scores rotated by one."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    (output,) = graph.output
    produced = output.name
    for node in graph.node:
        node.output[:] = [f"{o}_raw" if o == produced else o for o in node.output]
    order = numpy_helper.from_array(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], np.int64), "order")
    graph.initializer.append(order)
    graph.node.append(helper.make_node("Gather", [f"{produced}_raw", "order"], [produced], axis=1))
    onnx.save(model, str(target))
    return target


def agent_config(tmp: Path, broker: Broker, root: Path) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "device_id": "dev-9",
            "device": "x86-generic",
            "store_dir": str(tmp / "state"),
            "api": {"listen": "127.0.0.1:0"},
            "broker": {"url": broker.url},
            "registry": {
                "root": str(root),
                "models": ["digits"],
                "chunk_bytes": 4096,
                "check_interval_s": 10,
            },
            "serving": {
                "gates": {
                    "shadow_seconds": 0.5,
                    "min_samples": 5,
                    "watch_seconds": 2,
                    "max_latency_ratio": 100,
                }
            },
        }
    )


class Decisions(logging.Handler):
    """Every finished update check of the agent, with the signed timestamp it had seen.

    Why: "still on v1 after 3 s" passes even if the agent never looked. The update worker logs
    ``<model>: <state> (<reason>)`` on its own thread when a check ends, after the check has
    refreshed (and persisted) the signed metadata; reading the trusted timestamp version in
    that same moment ties each decision to the newest release the agent could have seen.
    """

    def __init__(self, metadata_dir: Path) -> None:
        super().__init__(logging.INFO)
        self.metadata_dir = metadata_dir
        self.seen: list[tuple[int, str]] = []
        self._logger = logging.getLogger("edge_agent.agent.updates")
        self._level = self._logger.level

    def trusted_timestamp(self) -> int:
        document = json.loads((self.metadata_dir / "timestamp.json").read_bytes())
        return int(document["signed"]["version"])

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("digits: "):
            self.seen.append((self.trusted_timestamp(), message))

    def after(self, timestamp_version: int, timeout: float) -> str:
        """The first decision taken on metadata newer than ``timestamp_version``."""
        return wait_for(
            lambda: next((m for v, m in list(self.seen) if v > timestamp_version), None),
            timeout,
            lambda: f"a decision on timestamp > {timestamp_version}; seen: {self.seen}",
        )

    def __enter__(self) -> Decisions:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


class Traffic:
    """Requests on the served model, so shadow checks have live traffic to compare."""

    def __init__(self, agent: Agent, x: np.ndarray) -> None:
        self.agent, self.x, self.failures = agent, x, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            served = self.agent.models.get("digits")
            if served is None:
                time.sleep(0.01)
                continue
            try:
                served.run({"input": self.x[i % len(self.x)][np.newaxis]})
            except Exception:
                self.failures += 1
            i += 1
            time.sleep(0.002)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def served_version(agent: Agent) -> str | None:
    served = agent.models.get("digits")
    return served.active.version if served is not None else None


def test_agent_installs_swaps_rejects_and_restarts_on_signed_releases(
    mosquitto, models_dir, tmp_path
):
    x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2).copy()
    bad = shuffled_classes_model(
        models_dir / "digits" / "digits_fp32.onnx", tmp_path / "digits_bad.onnx"
    )
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
        agent = Agent(agent_config(tmp_path, mosquitto, env.root_json))
        agent.start()
        try:
            wait_for(lambda: served_version(agent) == "1", 60, "the first delivery")
            with Traffic(agent, x) as traffic:
                env.publish(models_dir / "digits" / "digits_int8.onnx", "digits", "1.1.0")
                wait_for(lambda: served_version(agent) == "2", 60, "version 2 to pass the gates")
                env.publish(bad, "digits", "1.2.0")  # signed, but answers the wrong class
                assert agent.updates is not None
                wait_for(
                    lambda: 3 in agent.updates.store.rejected("digits"),
                    60,
                    "the bad release to be rejected",
                )
            assert traffic.failures == 0
            assert served_version(agent) == "2"
            assert "agreement" in agent.updates.store.rejected("digits")[3]
            active = agent.updates.store.active("digits")
            assert active is not None and active.version == 2
        finally:
            agent.stop()
    # restarted while the broker is gone: the store's active version serves at once
    mosquitto.stop()
    restarted = Agent(agent_config(tmp_path, mosquitto, env.root_json))
    restarted.start()
    try:
        assert served_version(restarted) == "2"
        served = restarted.models.get("digits")
        assert served is not None and served.run({"input": x[:1]}).version == "2"
    finally:
        restarted.stop()
    with ModelStore(tmp_path / "state" / "models", readonly=True) as store:
        assert 3 in store.rejected("digits")


def test_agent_in_a_rollout_group_moves_only_with_the_signed_rollout_and_follows_its_rollback(
    mosquitto, models_dir, tmp_path
):
    """Also a regression: a signed rollback made the agent reject the release for good, so a
    retried rollout of it could never reach the device."""
    from edge_agent.fleet.rollout import GateThresholds, RolloutController
    from edge_agent.fleet.rollout.gates import WaveReading

    class AlwaysHealthy:
        """Gate data for the controller: this test is about the device following the plan."""

        def reading(self, model, release, previous, cohort, window_s, group=()):
            return WaveReading(
                cohort=len(cohort),
                on_release=len(cohort),
                online=len(cohort),
                inferences=1000,
                error_rate=0.0,
                latency_p95_ms=1.0,
                baseline_p95_ms=1.0,
            )

    x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2).copy()
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
        config = agent_config(tmp_path, mosquitto, env.root_json)
        assert config.registry is not None
        config.registry.group = "lab"
        agent = Agent(config)
        agent.start()
        try:
            wait_for(lambda: served_version(agent) == "1", 60, "the first install")
            with Decisions(tmp_path / "state" / "trust" / "metadata") as decisions:
                before = decisions.trusted_timestamp()
                env.publish(models_dir / "digits" / "digits_int8.onnx", "digits", "1.1.0")
                # the agent saw release 2 in signed metadata and decided to stay
                assert decisions.after(before, 60) == "digits: active (up to date)"
            assert served_version(agent) == "1"  # in a group, only a rollout moves it
            controller = RolloutController(env.repo, tmp_path / "rollouts.json", AlwaysHealthy())  # type: ignore[arg-type]
            controller.create(
                "lab",
                "digits",
                2,
                ["dev-9"],
                waves=(100,),
                thresholds=GateThresholds(soak_s=0.1, min_inferences=1),
            )
            updates = agent.updates
            assert updates is not None
            with Traffic(agent, x) as traffic:
                wait_for(lambda: served_version(agent) == "2", 60, "the rollout to arrive")
                controller.abort("lab", "operator aborted")  # signed: back to release 1
                wait_for(lambda: served_version(agent) == "1", 60, "the rollback to arrive")
                wait_for(
                    lambda: getattr(updates.store.active("digits"), "version", None) == 1,
                    10,
                    "the store back on release 1",
                )
                # the rollback was the fleet's, not this device's: release 2 is not banned
                assert 2 not in updates.store.rejected("digits")
                controller.create(
                    "lab",
                    "digits",
                    2,
                    ["dev-9"],
                    waves=(100,),
                    thresholds=GateThresholds(soak_s=0.1, min_inferences=1),
                    retry=True,
                )
                wait_for(lambda: served_version(agent) == "2", 60, "the retried rollout")
            assert traffic.failures == 0
            assert updates.store.rejected("digits") == {}
        finally:
            agent.stop()


def test_a_quiet_shadow_window_leaves_the_release_staged_instead_of_banning_it(
    mosquitto, models_dir, tmp_path
):
    """Regression: too little traffic to compare used to reject a good release for good."""
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
        agent = Agent(agent_config(tmp_path, mosquitto, env.root_json))
        agent.start()
        try:
            wait_for(lambda: served_version(agent) == "1", 60, "the first delivery")
            updates = agent.updates
            assert updates is not None
            with Decisions(tmp_path / "state" / "trust" / "metadata") as decisions:
                before = decisions.trusted_timestamp()
                env.publish(models_dir / "digits" / "digits_int8.onnx", "digits", "1.1.0")
                # no traffic at all: the shadow check cannot judge, and the check says so
                decision = decisions.after(before, 60)
            assert decision.startswith("digits: failed (shadow check was inconclusive")
            assert updates.store.staged("digits") is not None  # v2 staged
            assert served_version(agent) == "1"
            assert updates.store.rejected("digits") == {}
            staged = updates.store.staged("digits")
            assert staged is not None and staged.version == 2
        finally:
            agent.stop()


def test_capture_samples_a_model_the_registry_delivers_after_start_up(
    mosquitto, models_dir, tmp_path
):
    """Regression: capture was attached only to models present when the agent started."""
    x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2).copy()
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        config = agent_config(tmp_path, mosquitto, env.root_json)
        config.capture.enabled = True
        config.capture.random_rate = 1.0
        agent = Agent(config)
        agent.start()  # nothing published yet: the model arrives later
        try:
            env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
            wait_for(lambda: served_version(agent) == "1", 60, "the first delivery")
            served = agent.models.get("digits")
            assert served is not None and agent.capture is not None
            for i in range(5):
                served.run({"input": x[i : i + 1]})
            assert agent.capture.flush(10)
            assert agent.samples is not None and len(agent.samples.list()) == 5
        finally:
            agent.stop()
