"""The dashboard in a real headless Chromium (Playwright, Debian's /usr/bin/chromium), against a
live monitor fed by two real agents (``edge-agent run``: real ONNX Runtime on the digits model,
real telemetry and drift windows through the outbox, sensors from a fake sysfs tree with a
battery and thermal zones). Checks what the pages SHOW and saves screenshots in the test's
tmp dir. Set EA_DASHBOARD_SCREENSHOT=path to also copy the fleet page screenshot there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.fleet.monitor import AlertRules, IngestSettings, Monitor, MonitorSettings
from edge_agent.telemetry.profile import build_profile, save_profile
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fakes.sysfs import FakeSysfs
from tests.fixtures.mosquitto import Broker, free_port
from tests.fixtures.wait import wait_for

BIN = Path(sys.executable).parent / "edge-agent"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def device_config(tmp: Path, name: str, battery_pct: int, temp_mc: int) -> Path:
    sysfs = FakeSysfs(tmp / f"sysfs-{name}")
    sysfs.add_thermal_zone(0, "cpu-thermal", temp_mc)
    sysfs.add_power_supply(
        "BAT0",
        type="Battery",
        capacity=battery_pct,
        status="Discharging",
        voltage_now=7_400_000,
        current_now=600_000,
    )
    path = tmp / f"device-{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "device_class": "rpi5",
                "description": "test device with a fake sysfs",
                "runtime": {"onnx": {"providers": [{"name": "cpu"}]}},
                "sensors": {
                    "thermal_zones": [str(sysfs.root / "sys/class/thermal/thermal_zone*")],
                    "power_supplies": [str(sysfs.root / "sys/class/power_supply/*")],
                    "power_rails": [],
                },
            }
        )
    )
    return path


def agent_config(
    tmp: Path, models_dir: Path, broker: str, name: str, battery: int, temp: int, model_file: str
) -> tuple[Path, int]:
    data = np.load(models_dir / "digits" / "test_set.npz")
    profile = tmp / "digits.profile.json"
    if not profile.exists():
        save_profile(build_profile(data["x"].transpose(0, 3, 1, 2), None), profile)
    port = free_port()
    config = {
        "device_id": name,
        "device": str(device_config(tmp, name, battery, temp)),
        "store_dir": str(tmp / f"state-{name}"),
        "models": [
            {
                "name": "digits",
                "path": str(models_dir / "digits" / model_file),
                "profile": str(profile),
            }
        ],
        "broker": {"url": broker, "keepalive_s": 5},
        "api": {"listen": f"127.0.0.1:{port}"},
        "telemetry": {
            "latency": {"report_interval_s": 1},
            "drift": {"window_size": 20, "min_window": 10},
        },
        "serving": {"status_interval_seconds": 1},
    }
    path = tmp / f"agent-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port


def infer_loop(port: int, x: np.ndarray, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        sample = x[i % len(x)][None].transpose(0, 3, 1, 2)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(sample.shape),
                        "datatype": "FP32",
                        "data": sample.ravel().tolist(),
                    }
                ]
            }
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/digits/infer",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except OSError:
            pass  # the agent is starting or stopping
        i += 1
        stop.wait(0.02)


@pytest.fixture
def fleet(mosquitto: Broker, models_dir: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    settings = MonitorSettings(
        http="127.0.0.1:0",
        alert_interval_s=1.0,
        rules=AlertRules(battery_low_pct=20.0, overheat_c=80.0),
        ingest=IngestSettings(client_id="dashboard-monitor"),
    )
    monitor = Monitor(str(tmp_path / "monitor.db"), mosquitto.url, settings).start()
    agents: dict[str, subprocess.Popen[bytes]] = {}
    stop = threading.Event()
    threads = []
    x = np.load(models_dir / "digits" / "test_set.npz")["x"].astype(np.float32)
    try:
        for name, battery, temp, model in (
            ("cam-a", 12, 55_000, "digits_fp32.onnx"),
            ("cam-b", 90, 48_000, "digits_int8.onnx"),
        ):
            config, port = agent_config(
                tmp_path, models_dir, mosquitto.url, name, battery, temp, model
            )
            with (tmp_path / f"{name}.log").open("ab") as log:
                agents[name] = subprocess.Popen(
                    [str(BIN), "--log-level", "info", "run", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            thread = threading.Thread(target=infer_loop, args=(port, x, stop), daemon=True)
            thread.start()
            threads.append(thread)
        yield {"monitor": monitor, "agents": agents, "tmp": tmp_path}
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for process in agents.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in agents.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        monitor.stop()


def test_dashboard_shows_live_fleet_device_and_rollouts(
    fleet: dict[str, Any], mosquitto: Broker
) -> None:
    from playwright.sync_api import expect, sync_playwright

    monitor: Monitor = fleet["monitor"]
    tmp: Path = fleet["tmp"]

    def reports(device: str) -> int:
        rows = monitor.store.rows(
            "SELECT COUNT(*) AS n FROM model_load WHERE device_id = ? AND count > 0", [device]
        )
        return int(rows[0]["n"])

    wait_for(lambda: reports("cam-a") >= 3 and reports("cam-b") >= 3, 90, "agent telemetry")
    wait_for(
        lambda: monitor.store.rows("SELECT 1 FROM drift WHERE device_id = 'cam-a'"),
        60,
        "a drift window from cam-a",
    )
    wait_for(
        lambda: monitor.store.rows(
            "SELECT 1 FROM alerts WHERE rule = 'battery_low' AND state = 'firing'"
        ),
        30,
        "the battery alert",
    )
    # rollout events and a sample, in the agents' formats, over the same broker
    publisher = MqttClient(mosquitto.url, "rollout-events")
    publisher.connect()
    try:
        for device, state, evidence in (("cam-a", "active", 0.99), ("cam-b", "rejected", 0.41)):
            publisher.publish(
                topics.device_topic(device, DeviceChannel.ROLLOUT),
                feed.rollout(
                    "digits",
                    "2",
                    state,
                    "shadow check" if state == "active" else "agreement 0.41 < 0.95",
                    agreement=evidence,
                    compared=100,
                    error_rate=0.0,
                    candidate_p95_ms=3.2,
                ),
            ).wait_for_publish(10)
        for chunk in feed.sample_chunks("c" * 32):
            publisher.publish(
                topics.device_topic("cam-a", DeviceChannel.SAMPLES), chunk
            ).wait_for_publish(10)
    finally:
        publisher.close()
    assert monitor.wait_idle(10)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(monitor.url + "/")
            expect(page.locator("#devices tr[data-device='cam-a']")).to_be_visible(timeout=15000)
            row_a = page.locator("#devices tr[data-device='cam-a']")
            row_b = page.locator("#devices tr[data-device='cam-b']")
            expect(row_a).to_contain_text("online")
            expect(row_a).to_contain_text("digits v1")
            expect(row_a).to_contain_text("12 %")
            expect(row_b).to_contain_text("digits v1")
            expect(row_b).to_contain_text("90 %")
            expect(row_b).to_contain_text("48 °C")
            expect(page.locator("[data-card='devices'] .n")).to_have_text("2")
            expect(page.locator("#alerts")).to_contain_text("battery low on cam-a: 12% (< 20%)")
            expect(page.locator("[data-model='digits']")).to_contain_text("v1 on 2 devices")
            page.screenshot(path=str(tmp / "fleet.png"), full_page=True)

            page.locator("#devices a", has_text="cam-a").click()
            expect(page.locator("#device-id")).to_have_text("cam-a")
            latency = page.locator("#chart-latency svg")
            expect(latency).to_have_attribute("data-points", _positive())
            expect(page.locator("#chart-latency path[data-series='digits p95']")).to_have_count(1)
            expect(page.locator("#chart-battery svg")).to_have_attribute("data-points", _positive())
            expect(page.locator("#chart-temperature svg")).to_have_attribute(
                "data-points", _positive()
            )
            expect(page.locator("#chart-power svg")).to_have_attribute("data-points", _positive())
            expect(page.locator("#chart-drift rect").first).to_be_visible()
            expect(page.locator("#samples")).to_contain_text("0.42")
            expect(page.locator("#models")).to_contain_text("digits v1 on cpu")
            page.screenshot(path=str(tmp / "device.png"), full_page=True)

            page.goto(monitor.url + "/rollouts")
            section = page.locator("section[data-model='digits']")
            expect(section.locator("tr[data-version='2']")).to_contain_text("rejected")
            expect(section.locator("tr[data-version='2']")).to_contain_text("active")
            expect(section.locator(".rollout-devices tr[data-device='cam-b']")).to_contain_text(
                "agreement 0.41 < 0.95"
            )
            page.screenshot(path=str(tmp / "rollouts.png"), full_page=True)

            # an agent stops: its retained status says offline, and the page shows it
            fleet["agents"]["cam-b"].send_signal(signal.SIGTERM)
            fleet["agents"]["cam-b"].wait(30)
            page.goto(monitor.url + "/")
            expect(page.locator("#devices tr[data-device='cam-b']")).to_contain_text(
                "offline", timeout=15000
            )
            assert not errors, errors
        finally:
            browser.close()
    copy_to = os.environ.get("EA_DASHBOARD_SCREENSHOT")
    if copy_to:
        shutil.copy(tmp / "fleet.png", copy_to)


def _positive() -> Any:
    import re

    return re.compile(r"^[1-9][0-9]*$")
