"""The agent following the signed registry: delivery, health-gated activation, rejection."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import AgentConfig
from edge_agent.daemon import Agent
from edge_agent.store import ModelStore
from tests.fakes.delivery_env import delivery_env
from tests.fixtures.mosquitto import Broker

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


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
