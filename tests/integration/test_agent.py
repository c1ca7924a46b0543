"""The agent process end to end: systemd protocol, MQTT status and telemetry, API, reload, stop."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.telemetry.profile import build_profile, save_profile
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.mosquitto import Broker, free_port, start_broker
from tests.fixtures.wait import patience, wait_for

BIN = Path(sys.executable).parent / "edge-agent"


def agent_config(
    tmp_path: Path,
    models_dir: Path,
    broker_url: str,
    api_port: int,
    model_file: str = "digits_fp32.onnx",
) -> Path:
    data = np.load(models_dir / "digits" / "test_set.npz")
    profile = tmp_path / "digits.profile.json"
    if not profile.exists():
        x = data["x"].transpose(0, 3, 1, 2)
        save_profile(build_profile(x, None), profile)
    config = {
        "device_id": "cam-07",
        "device": "x86-generic",
        "store_dir": str(tmp_path / "state"),
        "models": [
            {
                "name": "digits",
                "path": str(models_dir / "digits" / model_file),
                "profile": str(profile),
            }
        ],
        "broker": {"url": broker_url, "keepalive_s": 5},
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "telemetry": {
            "latency": {"report_interval_s": 1},
            "drift": {"window_size": 10, "min_window": 10},
        },
        "serving": {
            "status_interval_seconds": 1,
            "gates": {
                "shadow_seconds": 0.5,
                "min_samples": 5,
                "watch_seconds": 5,
                "max_latency_ratio": 100,
            },
        },
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class NotifySocket:
    """What systemd listens on: a datagram socket, with NOTIFY_SOCKET pointing at it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[str] = []

    def wait_for(self, field: str, timeout: float) -> bool:
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            if any(field in message for message in self.seen):
                return True
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return False

    def close(self) -> None:
        self.sock.close()


def infer(port: int, x: np.ndarray) -> dict:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/digits/infer",
        body,
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_api(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    def ready() -> bool:
        assert process.poll() is None, "the agent exited; see agent.log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return True
        except OSError:
            return False

    wait_for(ready, timeout, "the agent's API to become ready")


class Inbox:
    """Messages of several channels; each channel is read in order, none is thrown away."""

    def __init__(self) -> None:
        self._queues: dict[str, queue.Queue[Message]] = {}

    def put(self, message: Message) -> None:
        self._queue(message.topic.rsplit("/", 1)[-1]).put(message)

    def _queue(self, channel: str) -> queue.Queue[Message]:
        return self._queues.setdefault(channel, queue.Queue())

    def get(self, channel: DeviceChannel, timeout: float) -> Message:
        return self._queue(channel.value).get(timeout=timeout)


def subscribe(broker: Broker, *channels: DeviceChannel) -> tuple[MqttClient, Inbox]:
    box = Inbox()
    for channel in channels:
        box._queue(channel.value)
    client = MqttClient(broker.url, f"watcher-{time.monotonic_ns()}")
    client.connect()
    for channel in channels:
        client.subscribe(topics.device_topic("cam-07", channel), box.put)
    return client, box


def next_on(box: Inbox, channel: DeviceChannel, timeout: float, where=lambda d: True):
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        try:
            message = box.get(channel, timeout=0.2)
        except queue.Empty:
            continue
        document = json.loads(message.payload)
        if where(document):
            return document
    raise AssertionError(f"nothing matching on {channel.value} within {timeout} s")


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def start_agent(config: Path, notify: NotifySocket) -> subprocess.Popen:
    """The agent as systemd would start it; its log goes to agent.log beside the config."""
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    with (config.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [str(BIN), "--log-level", "info", "run", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_agent_serves_reports_reloads_and_stops_cleanly(mosquitto, models_dir, tmp_path, notify):
    api_port = free_port()
    config = agent_config(tmp_path, models_dir, mosquitto.url, api_port)
    watcher, box = subscribe(
        mosquitto,
        DeviceChannel.STATUS,
        DeviceChannel.TELEMETRY,
        DeviceChannel.ROLLOUT,
        DeviceChannel.DRIFT,
    )
    process = start_agent(config, notify)
    try:
        assert notify.wait_for("READY=1", 60), notify.seen
        wait_for_api(api_port, process)
        status = next_on(box, DeviceChannel.STATUS, 20, lambda d: d["state"] == "online")
        assert status["models"] == [
            {"name": "digits", "version": "1", "delegate": "cpu", "degraded": False}
        ]
        x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2)
        for i in range(30):
            assert infer(api_port, x[i : i + 1])["model_version"] == "1"
        telemetry = next_on(
            box, DeviceChannel.TELEMETRY, 20, lambda d: d["data"].get("load", {}).get("models")
        )
        (load,) = telemetry["data"]["load"]["models"]
        assert load["model"] == "digits" and load["count"] > 0
        drift = next_on(box, DeviceChannel.DRIFT, 20, lambda d: "signals" in d["data"])
        assert drift["data"]["model"] == "digits" and drift["data"]["samples"] >= 10
        assert {"input", "prediction"} <= set(drift["data"]["signals"])
        assert notify.wait_for("WATCHDOG=1", 10)

        # SIGHUP with a new model file: shadow-checked, then active as version 2
        agent_config(tmp_path, models_dir, mosquitto.url, api_port, "digits_int8.onnx")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + patience(30)
        version = "1"
        while version != "2" and time.monotonic() < deadline:  # traffic for the shadow check
            version = infer(api_port, x[:1])["model_version"]
        assert version == "2"
        event = next_on(box, DeviceChannel.ROLLOUT, 10, lambda d: d["state"] == "active")
        assert event["version"] == "2" and event["model"] == "digits"

        process.send_signal(signal.SIGTERM)
        assert process.wait(patience(30)) == 0
        assert notify.wait_for("STOPPING=1", 5)
        next_on(box, DeviceChannel.STATUS, 10, lambda d: d["state"] == "offline")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        watcher.close()


def test_agent_starts_and_serves_without_a_broker_then_connects_when_one_appears(
    models_dir, tmp_path, notify
):
    api_port, broker_port = free_port(), free_port()
    config = agent_config(tmp_path, models_dir, f"mqtt://127.0.0.1:{broker_port}", api_port)
    process = start_agent(config, notify)
    broker = None
    try:
        assert notify.wait_for("READY=1", 60)
        wait_for_api(api_port, process)
        x = np.load(models_dir / "digits" / "test_set.npz")["x"].transpose(0, 3, 1, 2)
        assert infer(api_port, x[:1])["model_version"] == "1"  # offline, still serving
        broker = start_broker(tmp_path / "late-broker", port=broker_port)
        watcher, box = subscribe(broker, DeviceChannel.STATUS, DeviceChannel.TELEMETRY)
        try:  # retained status (published on connect) reaches a late subscriber
            next_on(box, DeviceChannel.STATUS, 60, lambda d: d["state"] == "online")
            # telemetry queued while offline drains from the outbox
            next_on(box, DeviceChannel.TELEMETRY, 30, lambda d: "load" in d["data"])
        finally:
            watcher.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(patience(30)) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if broker is not None:
            broker.stop()


def test_a_bad_config_fails_at_start_with_the_reason(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(
        "device_id: cam-07\nmodels:\n  - {name: m, path: /nope.onnx}\n"
        "api: {listen: 'not an address'}\n"
    )
    result = subprocess.run(
        [str(BIN), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert result.returncode == 2
    assert "api.listen" in result.stderr and "Traceback" not in result.stderr


def test_agent_runs_a_video_pipeline_with_capture_from_its_config(models_dir, tmp_path):
    from edge_agent.agent.process import Agent
    from edge_agent.capture.store import SampleStore
    from edge_agent.config import AgentConfig
    from tests.fixtures.video import make_digits_video

    video = make_digits_video(tmp_path / "digits.avi", count=40)
    results = tmp_path / "results.jsonl"
    config = AgentConfig.model_validate(
        {
            "device_id": "cam-08",
            "device": "x86-generic",
            "store_dir": str(tmp_path / "state"),
            "api": {"listen": "127.0.0.1:0"},
            "models": [
                {"name": "digits32", "path": str(models_dir / "digits32" / "digits32_int8.tflite")}
            ],
            "pipelines": [
                {
                    "name": "door-cam",
                    "model": "digits32",
                    "source": {"type": "video", "path": str(video.path)},
                    "postprocess": {
                        "type": "classification",
                        "labels_file": str(models_dir / "digits32" / "labels.txt"),
                    },
                    "sinks": [{"type": "jsonl", "path": str(results)}],
                }
            ],
            "capture": {"enabled": True, "random_rate": 1.0},
        }
    )
    agent = Agent(config)
    agent.start()
    try:
        (pipeline,) = agent.pipelines
        assert pipeline.wait_finished(patience(60))
        assert agent.healthy()  # a finished video is not a stuck pipeline
        status = agent.status()
        assert status.pipelines[0]["processed"] == 40
        assert agent.capture is not None and agent.capture.flush(patience(10))
    finally:
        agent.stop()
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [int(r["result"]["top"][0]["label"]) for r in records] == video.labels
    store = SampleStore(tmp_path / "state" / "samples")
    try:
        assert len(store.list()) == 40  # every inference captured (random_rate 1.0)
    finally:
        store.close()


def test_sighup_applies_pipelines_live_and_names_sections_that_need_a_restart(
    mosquitto, models_dir, tmp_path, notify
):
    """Regression: on SIGHUP, changes to pipelines, capture, telemetry, serving, runtime and
    device_id were silently ignored. Now a pipeline change is applied in place, and a changed
    restart-only section is logged, shown to systemd and listed in the status document."""
    import cv2

    api_port = free_port()
    config = agent_config(tmp_path, models_dir, mosquitto.url, api_port)
    watcher, box = subscribe(mosquitto, DeviceChannel.STATUS)
    process = start_agent(config, notify)
    try:
        assert notify.wait_for("READY=1", 60), notify.seen
        first = next_on(box, DeviceChannel.STATUS, 20, lambda d: d["state"] == "online")
        assert first["restart_needed"] == [] and first["pipelines"] == []

        inbox, results = tmp_path / "inbox", tmp_path / "results.jsonl"
        inbox.mkdir()
        data = yaml.safe_load(config.read_text())
        data["pipelines"] = [
            {
                "name": "inbox",
                "model": "digits",
                "source": {"type": "folder", "path": str(inbox), "settle_s": 0},
                "postprocess": {"type": "classification"},
                "sinks": [{"type": "jsonl", "path": str(results)}],
            }
        ]
        data["telemetry"]["latency"]["report_interval_s"] = 2  # restart-only
        data["serving"]["stall_seconds"] = 20  # restart-only
        config.write_text(yaml.safe_dump(data))
        process.send_signal(signal.SIGHUP)

        status = next_on(
            box, DeviceChannel.STATUS, 20, lambda d: d.get("restart_needed") and d["pipelines"]
        )
        assert status["restart_needed"] == ["serving", "telemetry"]
        assert [p["name"] for p in status["pipelines"]] == ["inbox"]
        assert notify.wait_for("restart needed for serving, telemetry", 10), notify.seen

        digit = np.load(models_dir / "digits" / "test_set.npz")["x"][0]
        cv2.imwrite(str(inbox / "one.png"), (digit * 255).astype(np.uint8))
        deadline = time.monotonic() + patience(30)
        while not (results.exists() and results.read_text().strip()):
            assert time.monotonic() < deadline, "the pipeline added by the reload never ran"
            time.sleep(0.1)

        process.send_signal(signal.SIGTERM)
        assert process.wait(patience(30)) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        watcher.close()
    log = (tmp_path / "agent.log").read_text()
    for section in ("serving", "telemetry"):
        assert f"reload: `{section}` changed; it takes effect at the next restart" in log, log
    assert "pipeline inbox started" in log


def test_reload_stops_removed_pipelines_and_restarts_changed_ones_in_place(models_dir, tmp_path):
    from edge_agent.agent.process import Agent
    from edge_agent.config import load_agent_config

    inbox_1, inbox_2 = tmp_path / "in-1", tmp_path / "in-2"
    inbox_1.mkdir()
    inbox_2.mkdir()

    def write(pipelines: dict[str, Path]) -> Path:
        path = tmp_path / "agent.yaml"
        data = {
            "device_id": "cam-09",
            "device": "x86-generic",
            "store_dir": str(tmp_path / "state"),
            "api": {"listen": "127.0.0.1:0"},
            "models": [{"name": "digits", "path": str(models_dir / "digits" / "digits_fp32.onnx")}],
            "pipelines": [
                {"name": name, "model": "digits", "source": {"type": "folder", "path": str(inbox)}}
                for name, inbox in pipelines.items()
            ],
        }
        path.write_text(yaml.safe_dump(data))
        return path

    path = write({"kept": inbox_1, "changed": inbox_1, "removed": inbox_1})
    agent = Agent(load_agent_config(path), config_path=path)
    agent.start()
    try:
        before = {p.name: p for p in agent.pipelines}
        assert set(before) == {"kept", "changed", "removed"}
        write({"kept": inbox_1, "changed": inbox_2, "added": inbox_2})
        agent.reload()
        after = {p.name: p for p in agent.pipelines}
        assert set(after) == {"kept", "changed", "added"}
        assert after["kept"] is before["kept"]  # untouched: not restarted
        assert after["changed"] is not before["changed"]
        assert str(after["changed"].settings.source.path) == str(inbox_2)
        assert not before["removed"].running and not before["changed"].running
        assert all(p.running for p in after.values())
        assert agent.restart_needed == []
        assert agent.status().restart_needed == []
        assert agent.healthy()
    finally:
        agent.stop()
