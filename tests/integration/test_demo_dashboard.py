"""What `edge-agent demo` shows on its dashboard, in real Chromium.

The demo runs in this process (real Mosquitto, registry, monitor, the real agent on the
video, the simulated fleet); once its steps are done, the pages must show the battery
device's night and dawn with their reasons, the agent's drift episode (alarm raised and
cleared, the alert, samples captured on drift) and the fleet's power and drift views.
Set EA_DEMO_SCREENSHOTS=folder to keep the power and drift page screenshots there.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

from rich.console import Console

from edge_agent.demo.run import DEVICE, Demo, DemoOptions
from tests.fixtures.wait import wait_for
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS


def test_demo_dashboard_shows_power_cycle_and_drift_episode(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    demo = Demo(
        DemoOptions(workdir=tmp_path / "demo", duration_s=120, frames=60, broker="mosquitto"),
        console=Console(file=io.StringIO(), width=200),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            demo.run()
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: failure or any("drift alarm cleared" in s for s in demo.report.steps),
            150,
            "the demo's steps",
        )
        assert not failure, failure
        device, entered, left = demo.report.power_cycle
        assert entered == "battery 25% <= 25%" and left == "battery charging"
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
    finally:
        demo.stop()
        thread.join(60)
    assert not thread.is_alive()
    keep = os.environ.get("EA_DEMO_SCREENSHOTS")
    if keep:
        for name in ("demo-power.png", "demo-drift.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)


def _positive() -> object:
    import re

    return re.compile(r"^[1-9][0-9]*$")
