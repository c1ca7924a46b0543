"""The power policy's light variant when it is not served: pipelines keep their model, and the
agent says so once rather than at every policy check."""

from __future__ import annotations

import logging

from edge_agent.agent.models import ModelHost
from edge_agent.agent.power import LightVariant
from edge_agent.config import RuntimeSettings, ServingSettings


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
