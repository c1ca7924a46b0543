"""The fleet power and drift pages in real Chromium, fed by a simulated battery fleet.

Real Mosquitto, a real signed repository and registry, the monitor on SQLite, and the fleet
simulator on a fast clock (12 simulated minutes per second, from 04:00): its battery devices
run the agent's power policy through the night into the morning (saving at 25%, back to
normal once the panel has recharged the battery to 35%), and half of the fleet has a drift
episode judged by the agent's drift detector. The pages must show what the devices reported:
batteries, power, energy per inference, every power-mode switch with its reasons, devices in
drift alarm, and the alarm transitions; the API answers match the simulator's own account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.fleet.monitor import IngestSettings, Monitor, MonitorSettings
from edge_agent.fleet.simulator import FleetSimulator, SimulatorSettings
from edge_agent.fleet.simulator.drift import DriftEpisodes
from edge_agent.fleet.simulator.power import SupplySettings
from tests.fakes.delivery_env import delivery_env
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS


def fleet_settings() -> SimulatorSettings:
    return SimulatorSettings(
        devices=6,
        prefix="solar",
        initial_release=1,
        report_interval_s=0.25,
        inferences_per_report=10,
        check_interval_s=30,
        time_scale=720.0,
        start_hour=4.0,
        supply=SupplySettings(battery_fraction=0.5, start_pct=(26.0, 28.0)),
        drift=DriftEpisodes(
            fraction=0.5, start_s=(0.0, 600.0), duration_s=3600.0, window=100, every_reports=2
        ),
        seed=3,
    )


@pytest.fixture
def fleet(mosquitto: Broker, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    settings = MonitorSettings(
        http="127.0.0.1:0",
        alert_interval_s=1.0,
        ingest=IngestSettings(client_id="fleet-pages", group=None, clean_session=True),
    )
    with (
        delivery_env(tmp_path, mosquitto.url) as env,
        Monitor(str(tmp_path / "monitor.db"), mosquitto.url, settings) as monitor,
        FleetSimulator(mosquitto.url, env.root_json, tmp_path / "sim", fleet_settings()) as sim,
    ):
        yield {"monitor": monitor, "sim": sim, "tmp": tmp_path}


def test_power_and_drift_pages_show_the_simulated_fleet(fleet: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    monitor: Monitor = fleet["monitor"]
    sim: FleetSimulator = fleet["sim"]
    tmp: Path = fleet["tmp"]
    battery = [d.device_id for d in sim.devices if d.supply.supply == "battery"]
    drifting = [d.device_id for d in sim.devices if d.drift_state and d.drift_state.episode]
    assert battery and len(battery) < len(sim.devices) and drifting

    def events(kind: str, state: str) -> set[str]:
        rows = monitor.store.rows(
            "SELECT device_id FROM events WHERE kind = ? AND state = ?", [kind, state]
        )
        return {r["device_id"] for r in rows}

    # the night: saving at 25 %; the morning (~10:00 simulated, ~30 s in): back to normal
    # once recharged to 35 % (charging alone at dawn flapped the mode)
    wait_for(lambda: events("power_policy", "saving") == set(battery), 30, "battery saving")
    wait_for(lambda: events("power_policy", "normal") == set(battery), 60, "dawn")
    wait_for(lambda: set(drifting) <= events("drift_alarm", "ok"), 30, "drift episodes to end")
    assert monitor.wait_idle(10)

    power = monitor.http.handle("/api/power", {"since_s": ["600"]})[1]
    assert b"battery 25% <= 25%" in power
    assert re.search(rb"battery 3\d% >= 35% \(charging\)", power)  # 35 or 36: check timing

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(monitor.url + "/power")
            expect(page.locator("[data-card='battery'] .n")).to_have_text(str(len(battery)))
            expect(page.locator("[data-card='mains'] .n")).to_have_text(
                str(len(sim.devices) - len(battery))
            )
            for chart in ("battery", "power", "energy"):
                expect(page.locator(f"#chart-fleet-{chart} svg")).to_have_attribute(
                    "data-points", _positive()
                )
            battery_lines = page.locator("#chart-fleet-battery path[data-series]")
            expect(battery_lines).to_have_count(len(battery))
            transitions = page.locator("#power-transitions")
            first = battery[0]
            saving = transitions.locator(
                f"tr[data-device='{first}'][data-mode='saving']", has_text="battery 25% <= 25%"
            )
            expect(saving).to_have_count(1)  # the night; no re-entries at dawn any more
            expect(saving).to_contain_text("2 fps")
            normal = transitions.locator(f"tr[data-device='{first}'][data-mode='normal']")
            expect(normal.last).to_contain_text(re.compile(r"battery 3\d% >= 35% \(charging\)"))
            expect(normal.last).to_contain_text("10 fps")
            expect(page.locator(f"#power-devices tr[data-device='{first}']")).to_contain_text(
                "battery"
            )
            mains = next(d.device_id for d in sim.devices if d.device_id not in battery)
            expect(page.locator(f"#power-devices tr[data-device='{mains}']")).to_contain_text(
                "mains"
            )
            page.screenshot(path=str(tmp / "power.png"), full_page=True)

            page.goto(monitor.url + "/drift")
            section = page.locator("section[data-model='digits']")
            expect(section).to_be_visible()
            expect(section.locator("path[data-series]")).to_have_count(len(sim.devices))
            expect(section.locator(".bars rect").first).to_be_visible()
            drift_events = page.locator("#drift-events")
            for transition in ("input: ok -> alarm", "input: alarm -> ok"):  # raised, cleared
                expect(
                    drift_events.locator(f"tr[data-device='{drifting[0]}']", has_text=transition)
                ).to_have_count(1)
            page.screenshot(path=str(tmp / "drift.png"), full_page=True)

            page.goto(monitor.url + "/")
            row = page.locator(f"#devices tr[data-device='{first}']")
            expect(row.locator("td.mode .badge")).to_have_text("normal")
            expect(row).to_contain_text(" W")
            expect(row).to_contain_text(" mJ")
            assert not errors, errors
        finally:
            browser.close()


def _positive() -> Any:
    import re

    return re.compile(r"^[1-9][0-9]*$")
