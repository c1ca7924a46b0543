"""`edge-agent demo` while it runs: its dashboard in real Chromium, and its secured broker.

The demo runs in this process (real Mosquitto on the shipped config, registry, monitor, the
real agent on the video, the simulated fleet), once for the module; once its steps are done,
the pages must show the battery device's night and morning with their reasons, the agent's drift
episode (alarm raised and cleared, the alert, samples captured on drift) and the fleet's power
and drift views, and its broker must refuse what the shipped config refuses.
Set EA_DEMO_SCREENSHOTS=folder to keep the power and drift page screenshots there.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from edge_agent.config import BrokerSettings
from edge_agent.demo.run import Demo, DemoOptions
from edge_agent.demo.secured_broker import SecuredMosquitto
from edge_agent.demo.settings import DEVICE
from edge_agent.errors import TransportError
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.wait import patience, wait_for
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo on Mosquitto, its steps done (it then waits until stopped here)."""
    work = tmp_path_factory.mktemp("demo")
    running = Demo(
        DemoOptions(workdir=work, duration_s=300, frames=60, broker="mosquitto"),
        console=Console(file=io.StringIO(), width=200),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            running.run()
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: failure or any("drift alarm cleared" in s for s in running.report.steps),
            150,
            "the demo's steps",
        )
        assert not failure, failure
        yield running
    finally:
        running.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert not failure, failure


def test_demo_dashboard_shows_power_cycle_and_drift_episode(demo: Demo, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    device, entered, left = demo.report.power_cycle
    assert entered == "battery 25% <= 25%"
    assert re.fullmatch(r"battery 3\d% >= 30% \(charging\)", left), left
    url = demo.report.dashboard.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(url + "/")
            expect(page.locator("#alerts")).to_contain_text(f"drift alarm on {DEVICE}")
            expect(page.locator(f"#devices tr[data-device='{DEVICE}']")).to_contain_text(
                "digits32 v2"
            )

            page.goto(url + "/power")
            transitions = page.locator("#power-transitions")
            expect(
                transitions.locator(f"tr[data-device='{device}']", has_text=entered)
            ).to_have_count(1)
            expect(
                transitions.locator(f"tr[data-device='{device}']", has_text=left).last
            ).to_be_visible()
            expect(page.locator("#chart-fleet-battery svg")).to_have_attribute(
                "data-points", _positive()
            )
            expect(page.locator("#chart-fleet-energy svg")).to_have_attribute(
                "data-points", _positive()
            )
            page.screenshot(path=str(tmp_path / "demo-power.png"))

            page.goto(url + "/drift")
            section = page.locator("section[data-model='digits32']")
            expect(section.locator(f"tr[data-device='{DEVICE}']")).to_be_visible()
            events = page.locator("#drift-events")
            for transition in ("input: ok -> alarm", "input: alarm -> ok"):
                expect(
                    events.locator(f"tr[data-device='{DEVICE}']", has_text=transition)
                ).to_have_count(1)
            page.screenshot(path=str(tmp_path / "demo-drift.png"))

            page.goto(url + "/devices/" + DEVICE)
            expect(page.locator("#samples")).to_contain_text("drift")
            expect(page.locator("#events")).to_contain_text("input: ok -> alarm")
            assert not errors, errors
        finally:
            browser.close()
    keep = os.environ.get("EA_DEMO_SCREENSHOTS")
    if keep:
        for name in ("demo-power.png", "demo-drift.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)


def _positive() -> object:
    import re

    return re.compile(r"^[1-9][0-9]*$")


def test_demo_broker_refuses_an_anonymous_client_and_a_device_publishing_another_devices_topics(
    demo: Demo,
) -> None:
    """The demo runs the secured site it recommends: every component logged in as its own user,
    and while it runs a stranger without credentials is refused on both listeners, and a
    device added the way an operator adds one cannot publish on the demo agent's topics."""
    broker = demo.broker
    assert isinstance(broker, SecuredMosquitto)
    assert demo.report.broker.startswith("mqtts://") and demo.report.broker_ca is not None
    log = broker.log()
    for user in ("registry", "monitor", DEVICE, "sim-0000", "sim-0010"):
        assert f"as {user} (" in log, user  # each connection named after its own user

    anonymous = BrokerSettings(url=demo.report.broker, ca_file=demo.report.broker_ca)
    for settings in (anonymous, BrokerSettings(url=broker.plain_url)):
        stranger = MqttClient.from_settings(settings, "stranger")
        with pytest.raises(TransportError, match="refused"):
            stranger.connect(timeout_s=10)
        stranger.close()

    # a second camera joins the site (a user of its own, the broker reloaded), then forges
    intruder = "demo-cam-2"
    broker.add_user(intruder)
    broker.reload()
    forger = MqttClient.from_settings(broker.settings(intruder), intruder)
    wait_for(lambda: _connects(forger), 10, f"{intruder} to be known after the reload")
    with MqttClient.from_settings(broker.settings("operator"), "operator") as watcher:
        watcher.connect(timeout_s=10)
        seen: queue.Queue[Message] = queue.Queue()
        for device in (DEVICE, intruder):
            assert watcher.subscribe(f"ea/v1/{device}/#", seen.put)
        forged = b'{"forged": true}'
        infos = [
            forger.publish(topics.device_topic(DEVICE, channel), forged)
            for channel in (DeviceChannel.STATUS, DeviceChannel.TELEMETRY, DeviceChannel.DRIFT)
        ]
        infos.append(forger.publish(f"ea/v1/{DEVICE}/results/door-cam", forged))
        for info in infos:
            info.wait_for_publish(patience(5))  # the broker has judged each one
        # one publisher's messages reach a subscriber in order: once the sentinel is in,
        # a forgery the broker let through would be in too
        forger.publish(topics.device_topic(intruder, DeviceChannel.TELEMETRY), b"sentinel")
        got: list[Message] = []
        while not got or got[-1].payload != b"sentinel":
            got.append(seen.get(timeout=patience(10)))
    forger.close()
    assert [m.topic for m in got if m.payload == forged] == []
    assert any(m.topic.startswith(f"ea/v1/{DEVICE}/") for m in got)  # the real agent, heard


def _connects(client: MqttClient) -> bool:
    """Whether ``client`` connects now (a user the broker has not reloaded yet is refused)."""
    try:
        client.connect(timeout_s=5)
    except TransportError:
        return False
    return True
