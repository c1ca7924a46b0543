"""The dashboard's rollout page judges each variant of a release, as the rollout gates do.

Real Mosquitto, the monitor on SQLite, real Chromium; three devices report release 2 of one
model in two variants (two Pis on the int8 TFLite, a Coral on the Edge TPU build that fails a
fifth of its inferences), in the agents' own formats over the broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes import fleet_feed as feed
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS

DEVICES = {
    "pi-1": "digits_int8.tflite",
    "pi-2": "digits_int8.tflite",
    "coral-1": "digits_edgetpu.tflite",
}


def test_rollout_page_shows_each_variants_health(mosquitto: Broker, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    settings = MonitorSettings(
        http="127.0.0.1:0",
        ingest=IngestSettings(client_id="variant-pages", group=None, clean_session=True),
    )
    with Monitor(str(tmp_path / "monitor.db"), mosquitto.url, settings) as monitor:
        publisher = MqttClient(mosquitto.url, "variant-devices")
        publisher.connect()
        try:
            for seq, (device, variant) in enumerate(DEVICES.items(), 1):
                coral = "edgetpu" in variant
                models = [("digits", "2", "edgetpu" if coral else "xnnpack", variant)]
                for channel, payload in (
                    (DeviceChannel.STATUS, feed.status(device, models=models)),
                    (
                        DeviceChannel.TELEMETRY,
                        feed.telemetry(
                            device, seq, version="2", latencies_ms=[3.0] * 80, errors=20 * coral
                        ),
                    ),
                    (DeviceChannel.ROLLOUT, feed.rollout("digits", "2", "active", "passed")),
                ):
                    publisher.publish(
                        topics.device_topic(device, channel), payload
                    ).wait_for_publish(10)
        finally:
            publisher.close()

        def variants() -> dict[str, dict[str, float]]:
            body = monitor.http.handle("/api/rollouts", {"window_s": ["600"]})[1]
            version = json.loads(body)["models"].get("digits", {}).get("versions", {}).get("2", {})
            return version.get("variants", {})  # type: ignore[no-any-return]

        wait_for(lambda: len(variants()) == 2, 30, "both variants' telemetry")
        wait_for(
            lambda: variants()["digits_edgetpu.tflite"]["error_rate"] is not None, 30, "telemetry"
        )
        shown = variants()
        assert shown["digits_edgetpu.tflite"]["error_rate"] == 0.2
        assert shown["digits_edgetpu.tflite"]["devices"] == 1
        assert shown["digits_int8.tflite"]["error_rate"] == 0.0
        assert shown["digits_int8.tflite"]["devices"] == 2

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(monitor.url + "/rollouts")
                section = page.locator("section[data-model='digits']")
                expect(section.locator("tr[data-version='2']")).to_contain_text("active")
                coral = section.locator("tr[data-variant='digits_edgetpu.tflite']")
                expect(coral).to_contain_text("digits_edgetpu.tflite")
                expect(coral).to_contain_text("20")
                expect(coral).to_contain_text("1 / 1")
                pis = section.locator("tr[data-variant='digits_int8.tflite']")
                expect(pis).to_contain_text("2 / 2")
                page.screenshot(path=str(tmp_path / "rollouts.png"), full_page=True)
                assert errors == []
            finally:
                browser.close()
