"""The power policy's light variant (``agent/power.py``): when it is not served, pipelines keep
their model and the agent says so once rather than at every policy check; a light version's
watch-window rollback is not a release's failure. The swaps themselves run end to end in
``tests/integration/test_power_policy_applied.py``."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent.agent.models import ModelHost
from edge_agent.agent.power import LightVariant
from edge_agent.config import ModelEntry, RuntimeSettings, ServingSettings


def test_an_unserved_light_variant_is_reported_once_not_at_every_check(caplog):
    host = ModelHost(
        RuntimeSettings(), ServingSettings(), on_served=lambda _: None, on_event=lambda _: None
    )
    reports: list[tuple[object, ...]] = []
    light = LightVariant(host, set, lambda *report: reports.append(report))
    try:
        with caplog.at_level(logging.WARNING, logger="edge_agent.agent.power"):
            for _ in range(5):  # the policy decides every check_interval_s
                light.want("ghost", ["battery 10% <= 25%"])
            light.want(None)
            light.want("ghost")
    finally:
        light.close()
    warnings = [r for r in caplog.records if "ghost" in r.getMessage()]
    assert len(warnings) == 1
    assert reports == []  # nothing was swapped


def test_a_light_version_rolled_back_by_its_watch_leaves_the_store_and_waits_for_next_time():
    """The light variant is a temporary version: its watch-window rollback must not roll a
    delivered release back in the store (that is for a release failing on this device), and
    it is not swapped in again in the same saving episode."""
    from edge_agent.wire.states import SwapState

    store_rollbacks: list[tuple[str, str, bool]] = []

    class Updates:
        def roll_back(self, name: str, reason: str, reject: bool) -> None:
            store_rollbacks.append((name, reason, reject))

    events: list[dict[str, object]] = []
    host = ModelHost(
        RuntimeSettings(), ServingSettings(), on_served=lambda _: None, on_event=events.append
    )
    host.updates = Updates()  # type: ignore[assignment]
    host.delivered = {"digits"}
    light_rolled_back = {"model": "digits", "version": "2+light", "reason": "error rate 5%"}
    host._swap_event({**light_rolled_back, "state": SwapState.ROLLED_BACK})
    assert store_rollbacks == [] and len(events) == 1
    host._swap_event(
        {"model": "digits", "version": "2", "state": SwapState.ROLLED_BACK, "reason": "r"}
    )
    assert store_rollbacks == [("digits", "r", True)]  # a release's own failure still does

    reports: list[tuple[object, ...]] = []
    light = LightVariant(host, set, lambda *report: reports.append(report))
    try:
        host.entries["digits-light"] = ModelEntry(name="digits-light", path=Path("light.tflite"))
        light.want("digits-light", ["battery 10% <= 25%"])  # saving, nothing to swap here
        light.rolled_back("digits", "2+light", "error rate 5%")
        assert ("digits", "digits-light") in light._refused
        assert reports == [
            ("digits", "rolled_back", None, ["light variant v2+light rolled back: error rate 5%"])
        ]
    finally:
        light.close()
