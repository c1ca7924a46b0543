"""``kill -9`` of the whole agent at 20 random points while it downloads and activates a model.

The agent (``edge-agent run --config`` with a ``registry:`` section, a real subprocess) serves
version 1 and follows the registry; version 2 is published behind a rate-limited registry so
the download spans many agent lives. Live traffic goes to the agent's API throughout (the
health-gated swap needs it). Each round starts the agent, waits until its API is up, lets it
run for a random time and SIGKILLs it. After every kill:

- the store reopens consistent, every installed version verifies, and its active version is
  the one the agent serves when it comes back;
- the download's journal never goes backwards (the download is never started over).

At the end the agent finishes the update (version 2 served); the registry served no more of
version 2 than one copy plus what each kill can lose (a window in flight and the chunks since
the journal was last written). ``EDGE_AGENT_KILL_SEED`` replays another set of kill points.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import random
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.config import FetchSettings
from edge_agent.delivery.store import ModelStore
from edge_agent.fleet.registry import RegistrySettings
from edge_agent.transport.client import MqttClient
from tests.fakes.delivery_env import EDGE_AGENT, chunks_served, delivery_env, watch_rollout
from tests.fixtures.mosquitto import Broker, free_port

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.mqtt

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
DEVICE = "dev-k9"
CHUNK = 4096
WINDOW = 8
ROUNDS = 20
SEED = int(os.environ.get("EDGE_AGENT_KILL_SEED", "20240"))


def padded_model(source: Path, target: Path, pad_bytes: int) -> Path:
    """The same network (identical answers) in a larger file: room for many kill points."""
    model = onnx.load(str(source))
    entry = model.metadata_props.add()
    entry.key, entry.value = "padding", os.urandom(pad_bytes // 2).hex()
    onnx.save(model, str(target))
    return target


def write_config(tmp_path: Path, broker: Broker, root: Path, port: int) -> Path:
    config = {
        "device_id": DEVICE,
        "device": "x86-generic",
        "store_dir": str(tmp_path / "state"),
        "api": {"listen": f"127.0.0.1:{port}"},
        "broker": {"url": broker.url, "keepalive_s": 5},
        "registry": {
            "root": str(root),
            "models": ["digits"],
            "chunk_bytes": CHUNK,
            "window": WINDOW,
            "check_interval_s": 10,
        },
        "serving": {
            "gates": {
                "shadow_seconds": 1.0,
                "min_samples": 5,
                "watch_seconds": 1,
                "watch_min_requests": 5,
                "max_latency_ratio": 100,
            }
        },
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Traffic:
    """Inference requests to the agent's API all along (refused ones while it is down)."""

    def __init__(self, port: int, x: np.ndarray) -> None:
        body = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32"}]}
        self._bodies = [
            json.dumps({"inputs": [{**body["inputs"][0], "data": s.ravel().tolist()}]}).encode()
            for s in x[:32]
        ]
        self._url = f"http://127.0.0.1:{port}/v2/models/digits/infer"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.answered = 0

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            request = urllib.request.Request(
                self._url, self._bodies[i % len(self._bodies)], {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
                    self.answered += 1
            except (OSError, http.client.HTTPException):  # the agent was killed mid-answer
                self._stop.wait(0.02)
            i += 1
            self._stop.wait(0.005)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def served_version(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/digits", timeout=1) as r:
            versions: list[str] = json.loads(r.read())["versions"]
    except OSError:
        return None
    return versions[0] if versions else None


def start_agent(config: Path) -> subprocess.Popen[bytes]:
    with (config.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [str(EDGE_AGENT), "--log-level", "info", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until_serving(agent: subprocess.Popen[bytes], port: int, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert agent.poll() is None, "the agent exited on its own; see agent.log"
        version = served_version(port)
        if version is not None:
            return version
        time.sleep(0.01)
    raise AssertionError("the agent did not come up serving digits; see agent.log")


def journal_chunks(download_dir: Path) -> int | None:
    """Chunks the partial download's journal lists (None: no partial download)."""
    for journal in download_dir.glob("*.part.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            return len(json.loads(journal.read_text())["done"])
    return None


def _active_version(store_dir: Path) -> int | None:
    if not (store_dir / "state.json").exists():
        return None
    with ModelStore(store_dir, readonly=True) as store:
        active = store.active("digits")
        return active.version if active is not None else None


def check_store(store_dir: Path) -> int:
    """The store after a kill: consistent, every version verifies; returns the active one."""
    with ModelStore(store_dir, readonly=True) as store:
        models = store.list()
        slots = [m.state for m in models if m.state != "inactive"]
        assert len(set(slots)) == len(slots), models
        for model in models:
            store.verify(model)
        active = store.active("digits")
        assert active is not None, models
        return active.version


def test_agent_killed_at_20_random_points_always_restarts_verified_and_finishes(
    tmp_path: Path, mosquitto: Broker
):
    rng = random.Random(SEED)
    x = np.load(DIGITS / "test_set.npz")["x"].transpose(0, 3, 1, 2).astype(np.float32)
    big = padded_model(DIGITS / "digits_fp32.onnx", tmp_path / "digits_padded.onnx", 600_000)
    slow = RegistrySettings(rate_per_device=60, burst_per_device=WINDOW, notify_poll_s=0.2)
    port = free_port()
    store_dir = tmp_path / "state" / "models"
    with delivery_env(tmp_path / "env", mosquitto.url, settings=slow) as env:
        env.publish(DIGITS / "digits_fp32.onnx", "digits", "1.0.0")
        config = write_config(tmp_path, mosquitto, env.root_json, port)
        download_dir = tmp_path / "state" / "trust" / "downloads"
        agent = start_agent(config)
        try:
            assert wait_until_serving(agent, port) == "1"
            deadline = time.monotonic() + 30  # the store activates just after serving starts
            while _active_version(store_dir) != 1:
                assert time.monotonic() < deadline, "version 1 was never activated in the store"
                time.sleep(0.02)
        finally:
            agent.terminate()
            agent.wait(30)
        release = env.publish(big, "digits", "1.1.0")
        chunks = -(-release.length // CHUNK)

        with (
            MqttClient(mosquitto.url, "kill9-watcher") as watcher,
            Traffic(port, x) as traffic,
        ):
            watcher.connect()
            events = watch_rollout(watcher, DEVICE)
            seen: list[dict[str, Any]] = []
            progress: list[int | None] = []
            kills_during_update = 0
            for _round in range(ROUNDS):
                active = check_store(store_dir)
                agent = start_agent(config)
                try:
                    assert wait_until_serving(agent, port) == str(active)
                    time.sleep(rng.uniform(0.05, 0.9))
                finally:
                    os.kill(agent.pid, signal.SIGKILL)
                    agent.wait()
                with contextlib.suppress(queue.Empty):
                    while True:
                        seen.append(json.loads(events.get_nowait().payload))
                done = any(e["state"] == "active" and e["version"] == 2 for e in seen)
                kills_during_update += not done
                progress.append(journal_chunks(download_dir))

            active = check_store(store_dir)
            agent = start_agent(config)
            try:
                assert wait_until_serving(agent, port) == str(active)
                deadline = time.monotonic() + 60
                while served_version(port) != "2" or check_store(store_dir) != 2:
                    assert time.monotonic() < deadline, "the update never finished"
                    assert agent.poll() is None
                    time.sleep(0.05)
            finally:
                agent.terminate()
                agent.wait(30)
            assert traffic.answered > 0

    states = {e["state"] for e in seen}
    print(f"seed {SEED}: journal after each kill {progress}; states seen {sorted(states)}")
    assert kills_during_update >= 15, (kills_during_update, progress)
    assert "downloading" in states and states & {"verified", "staged", "shadow"}, states
    listed = [p for p in progress if p is not None]
    assert listed == sorted(listed), progress  # the journal never went backwards
    assert listed and listed[0] < chunks  # killed mid-download at least once
    # A kill loses at most what was in flight (a window) and what landed since the journal
    # was last written (flush_every chunks): never the download so far.
    served = chunks_served(env, DEVICE, CHUNK, "targets/models/digits/2/")
    assert served <= chunks + ROUNDS * (WINDOW + FetchSettings().flush_every), (served, chunks)
    assert check_store(store_dir) == 2
